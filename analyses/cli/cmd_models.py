"""``pivotlens models``: the embedded models, whether cached, their depth and vocabulary."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from probes.backend.models import EMBEDDED, cache_problem, embedded_cache_path


def models() -> None:
    """List the embedded models (dequantized 4-bit GGUF weights), cached or not."""
    table = Table(title="embedded models")
    for column in ("name", "cached", "layers", "vocab", "package", "description"):
        table.add_column(column)
    for model in EMBEDDED.values():
        folder = embedded_cache_path(model.name)
        problem = cache_problem(folder) if folder.exists() else "not converted yet"
        cached = problem is None
        layers = vocab = "?"
        if cached:
            config = json.loads((folder / "config.json").read_text())
            layers, vocab = str(config["num_hidden_layers"]), str(config["vocab_size"])
        table.add_row(
            model.name, "yes" if cached else f"no: {problem}", layers, vocab, model.package, model.description
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
