"""The model's description: the formula (parsed as data, never run), the evaluator of its expressions,
factors, the model frame, the fixed-effects matrix X, the random-effects terms (Z and the theta -> Lambda
map) and the GLM family; lme4's ``lFormula`` without the objective.

Imports only pylme.rbase (and pylme.errors).
"""
