"""The conformance framework: the same models through pylme (or another engine) and R's lme4,
compared layer by layer. Run it with ``python -m conformance run``."""
