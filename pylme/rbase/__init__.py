"""What lme4 takes from R's standard packages, as R does it: printing numbers and tables (base's
``format``/``print``), the order strings sort in (base's ``sort``), the random numbers of ``set.seed``,
interpolation splines (splines), progress bars (utils) and running tasks in parallel (parallel).

The lowest stage: it imports nothing of pylme but pylme.errors.
"""
