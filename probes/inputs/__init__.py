"""Loaders and generators of the data under ``data/``: what the probes read."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
