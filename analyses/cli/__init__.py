"""The ``pivotlens`` command line: a thin layer over the functions a notebook calls.

Each command lives in its own module, ``cmd_<name>.py`` in this package or a module named by a
``pivotlens.methods`` entry point (a method from another package, see ``probes.registry``), and
defines ``register(app)`` with ``app.command("name")(function)`` calls; modules are discovered
from their source and imported only when one of their commands runs, so adding a command never
means editing this file.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import pkgutil
import sys
import warnings
from pathlib import Path

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from analyses.cli.settings import Settings, version_callback
from probes.backend.errors import PivotlensError


def _commands_in(module: str, source: Path) -> dict[str, tuple[str, str]]:
    """``command -> (module, one-line help)`` of one module, read from its source without
    importing it: its ``register`` holds ``app.command("name")(function)`` calls."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    docs = {f.name: (ast.get_docstring(f) or "").split("\n\n")[0] for f in tree.body if isinstance(f, ast.FunctionDef)}
    index = {}
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Call)
            and isinstance(call.func.func, ast.Attribute)
            and call.func.func.attr == "command"
            and call.func.args
            and isinstance(call.func.args[0], ast.Constant)
            and isinstance(call.args[0], ast.Name)
        ):
            index[str(call.func.args[0].value)] = (module, " ".join(docs.get(call.args[0].id, "").split()))
    return index


@functools.cache
def _own_commands() -> dict[str, tuple[str, str]]:
    """The commands of this package's ``cmd_*.py`` modules."""
    index = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        index |= _commands_in(f"{__name__}.{module}", Path(__path__[0], f"{module}.py"))
    return index


def _command_index() -> dict[str, tuple[str, str]]:
    """Every command: those of the ``pivotlens.methods`` entry points' modules, then this package's
    own (which win a clash of names)."""
    from probes.registry import method_entry_points

    index = {}
    for entry in method_entry_points():
        spec = importlib.util.find_spec(entry.module)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            index |= _commands_in(entry.module, Path(spec.origin))
    return index | _own_commands()


class _LazyCommands(TyperGroup):
    """The commands of ``analyses/cli/cmd_*.py``, each module imported only when one of its
    commands runs (or its own ``--help`` is asked for), so ``pivotlens --help`` and
    ``--version`` do not import torch, transformers or plotly."""

    _listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(_command_index())

    def get_command(self, ctx: typer.Context, name: str):
        index = _own_commands() if name in _own_commands() else _command_index()
        if name not in index:
            return None
        module, summary = index[name]
        if self._listing:  # the overview needs names and one-line help only
            return TyperCommand(name=name, help=summary)
        commands = typer.Typer()
        importlib.import_module(module).register(commands)
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
        message = exc.format_message() if isinstance(exc, typer.TyperException) else str(exc)
        typer.secho(f"error: {' '.join(message.split())}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    finally:
        warnings.formatwarning = formatwarning
    sys.exit(code if isinstance(code, int) else 0)
