"""The analyses of a fitted model: summary and VarCorr layouts, anova and likelihood-ratio tests,
Satterthwaite's and Kenward-Roger's tests with their shared table rows (tables), model reduction,
profiles and confidence intervals, the parametric bootstrap, simulate and predict, emmeans, influence,
allFit and rePCA.

Each takes a fitted model through its public members and imports no fitted-model class: the classes
of pylme.fitted call these functions as their methods. Imports only pylme.fitting and the stages
below it.
"""
