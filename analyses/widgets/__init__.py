"""Notebook widgets over the pipelines and figures (JupyterLab, through ipywidgets and anywidget)."""
