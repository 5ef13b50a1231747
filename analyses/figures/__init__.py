"""Figures are functions of tables (compute -> statistic -> figure); nothing here runs a model."""

from analyses.figures.io import figure_id, save_figure

__all__ = ["figure_id", "save_figure"]
