"""The ``pivotlens`` command line: a thin layer over the functions a notebook calls.

Each command lives in its own module in this package and defines ``register(app)`` with
``app.command("name")(function)`` calls; modules are discovered from their source and imported
only when one of their commands runs, so adding a command never means editing this file.
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from analyses.cli.settings import Settings, version_callback
from probes.backend.errors import PivotlensError


@functools.cache
def _command_index() -> dict[str, tuple[str, str]]:
    """``command -> (module, one-line help)``, read from the ``cmd_*.py`` sources without
    importing them: each ``register`` holds ``app.command("name")(function)`` calls."""
    index = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        tree = ast.parse(Path(__path__[0], f"{module}.py").read_text(encoding="utf-8"))
        docs = {
            f.name: (ast.get_docstring(f) or "").split("\n\n")[0] for f in tree.body if isinstance(f, ast.FunctionDef)
        }
        for call in ast.walk(tree):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Call)
                and isinstance(call.func.func, ast.Attribute)
                and call.func.func.attr == "command"
                and call.func.args
                and isinstance(call.args[0], ast.Name)
            ):
                index[call.func.args[0].value] = (module, " ".join(docs.get(call.args[0].id, "").split()))
    return index


class _LazyCommands(TyperGroup):
    """The commands of ``analyses/cli/cmd_*.py``, each module imported only when one of its
    commands runs (or its own ``--help`` is asked for), so ``pivotlens --help`` and
    ``--version`` do not import torch, transformers or plotly."""

    _listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(_command_index())

    def get_command(self, ctx: typer.Context, name: str):
        if name not in _command_index():
            return None
        module, summary = _command_index()[name]
        if self._listing:  # the overview needs names and one-line help only
            return TyperCommand(name=name, help=summary)
        commands = typer.Typer()
        importlib.import_module(f"{__name__}.{module}").register(commands)
        return typer.main.get_group(commands).commands[name]

    def format_help(self, ctx: typer.Context, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="pivotlens",
    cls=_LazyCommands,
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
        help="Results store, where finished batches are kept and reused (default $PIVOTLENS_RESULTS or "
        "<cache>/results).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    ctx.obj = Settings(
        model=model, backend=backend, device=device, dtype=dtype, batch_size=batch_size, out=out, results=results
    )
    ctx.obj.check()


def _one_line_warning(message: Warning | str, *args: object) -> str:
    """A warning as the command line prints it: one line, without the source line."""
    return f"warning: {' '.join(str(message).split())}\n"


def main() -> None:
    """Entry point: pivotlens errors and usage errors become one clear line and exit code 2;
    any other exception is a bug and keeps its traceback. Warnings are one line each."""
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(1)
    except (PivotlensError, typer.TyperException) as exc:  # typer's usage errors: bad option values, unknown commands
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.secho(f"error: {' '.join(message.split())}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    finally:
        warnings.formatwarning = formatwarning
    sys.exit(code if isinstance(code, int) else 0)
