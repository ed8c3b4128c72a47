"""The fitted models: LmerMod and GlmerMod (the family-neutral extractors in model.MerMod), and a fit
as plain data (record: FitRecord; extract and glmer_record build it).

Imports pylme.inference (the methods' analyses) and the stages below it.
"""
