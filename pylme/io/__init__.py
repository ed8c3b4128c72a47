"""Data in and results out: the bundled data sets (datasets, documented as pylme.datasets), R's data
files (read_r), lme4's diagnostic plots (plotting, documented as pylme.plotting) and the command line
(cli: ``pylme ...`` and ``python -m pylme``).

The top stage: nothing else in pylme imports it but the package's __init__ (lazily).
"""
