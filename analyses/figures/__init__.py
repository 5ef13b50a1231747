"""Figures are functions of tables (compute -> statistic -> figure); nothing here runs a model."""

from analyses.figures.io import save_figure

__all__ = ["save_figure"]
