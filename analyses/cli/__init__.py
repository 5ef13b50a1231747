"""The ``pivotlens`` command line: a thin layer over the functions a notebook calls.

Each command lives in its own module in this package and defines ``register(app)``; modules
are discovered, so adding a command never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from analyses.cli.settings import Settings, version_callback
from probes.backend.errors import PivotlensError

app = typer.Typer(
    name="pivotlens",
    help="Look inside multilingual LLMs: logit-lens pivots, early exit, interference, regions, confusion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    model: str = typer.Option("gemma-3-270m", help="Embedded model name, local folder, or Hugging Face id."),
    backend: str = typer.Option("transformer-lens", help="transformer-lens or nnsight."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    batch_size: int = typer.Option(16, min=1, help="Prompts per forward pass."),
    out: str = typer.Option("out", help="Output folder for tables and figures."),
    results: str = typer.Option(
        None,
        help="Results store, where finished batches are kept and reused (default $PIVOTLENS_RESULTS or <cache>/results).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    ctx.obj = Settings(
        model=model, backend=backend, device=device, dtype=dtype, batch_size=batch_size, out=out, results=results
    )


def _register_commands() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__name__}.{module}").register(app)


_register_commands()


def main() -> None:
    """Entry point: pivotlens errors become one clear line and exit code 2."""
    try:
        app()
    except PivotlensError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
