"""The fitting functions a user calls: lmer (lme4's lFormula, mkLmerDevfun, optimizeLmer and mkMerMod
in order; on a dask DataFrame, through pylme.scaleout), glmer with its stages (glFormula,
mkGlmerDevfun) and glmer_nb.

Imports any stage below it; only pylme.io and the package's __init__ import it.
"""
