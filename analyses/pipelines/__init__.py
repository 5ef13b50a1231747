"""The only modules that run models and write files."""
