"""Fitting: the one fit driver (driver: choose an objective, optimise, check convergence, the lme4
control settings), the optimisers (optimizer), the polish step (polish) and lme4's convergence checks
(convergence).

Imports only the stages below it: pylme.objectives, pylme.description, pylme.rbase.
"""
