"""Pipelines: the only modules that run models and write tables and figures."""
