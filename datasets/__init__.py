"""Bundled data sets (CSV) and their manifest; read them with pylme.datasets.load."""
