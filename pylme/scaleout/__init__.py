"""Fits past one design and one machine: one design fitted to many responses (many; lockstep: the
responses of a task optimised together), and lmer on a dask DataFrame (daskframe: the model frame in
one pass over the partitions; distributed: the blocked objective's statistics summed over partitions).

Imports pylme.fitted and the stages below it.
"""
