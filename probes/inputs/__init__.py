"""Loaders and generators of the data in ``data/``."""
