"""The objectives: the criterion a fit minimises over theta and the linear algebra behind it. The
design (X, Z, Lambda) apart from the response (y, weights, offset); one declared interface
(objective.Objective) that the CHOLMOD (pls), dense and blocked (with tiled, memory and gradient)
objectives implement; lFormula/mkLmerDevfun (lformula), and PIRLS, glmer's Laplace deviance (pirls).

Imports only pylme.description and pylme.rbase.
"""
