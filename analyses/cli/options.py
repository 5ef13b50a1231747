"""Command options declared once, as a dataclass: each field is one option, its type, default and
help in one place (``steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 300``),
and the command receives the filled-in dataclass instead of one parameter per option.

Typer reads a command's options from its signature; :func:`options` gives the command the
signature ``(ctx, <one parameter per field>)`` and calls it with ``(ctx, Options(**values))``.
Fields without a default are required options (declare the dataclass ``kw_only=True`` so they may
follow defaulted ones); a list option's default is a ``default_factory``. Dataclasses inherit
fields, so commands that share options share one declaration and one help text. Checks of the
values that need no model are methods of the dataclass, run before the model loads.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

from analyses.cli.settings import check_layer
from analyses.interventions.pivoted_loss import PivotedObjective
from probes.backend.errors import InputError
from probes.backend.lenses import parse_lens_names
from probes.backend.models import model_depth


def _default(field: dataclasses.Field[object]) -> object:
    """The field's default (a ``default_factory``'s value: a list option's default list), or
    ``inspect.Parameter.empty`` for a required option."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def option_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per field of the dataclass ``cls``, annotated as declared."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[field.name], default=_default(field)
        )
        for field in dataclasses.fields(cls)
        if field.init
    ]


def options(cls: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``@options(Options)`` on ``def command(ctx: typer.Context, options: Options)``: typer sees
    one option per field of ``Options`` (and the context)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        parameters = [context, *option_parameters(cls)]

        @functools.wraps(command)
        def run(ctx: typer.Context, **values: object) -> None:
            command(ctx, cls(**values))

        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


@dataclass(frozen=True, kw_only=True)
class PivotOptions:
    """PROM's pivoted objective (Sec. 2.3): the options of every command that reads a language out
    at layer n (``finetune``, ``prom-fig3``, ``interference``, ``interference-fig2``); the defaults
    are :class:`PivotedObjective`'s."""

    layer: Annotated[
        int | None,
        typer.Option(help="Pivoted: 0-based read-out layer n (default three quarters of the depth)."),
    ] = PivotedObjective.layer
    alpha: Annotated[float, typer.Option(help="Pivoted: label smoothing of L_{n,e}.")] = PivotedObjective.alpha
    lam: Annotated[float, typer.Option(help="Pivoted: weight lambda of L_{n,e}.")] = PivotedObjective.lam

    def check_layer(self, model: str) -> None:
        """``--layer`` is a layer of ``model`` (when its depth is known before loading it)."""
        check_layer(self.layer, model_depth(model), model)

    def pivoted_objective(self) -> PivotedObjective:
        return PivotedObjective(self.layer, self.alpha, self.lam)


@dataclass(frozen=True, kw_only=True)
class LensOption:
    """The one lens a command decodes the layers with (``lens``, ``exit``)."""

    lens: Annotated[str, typer.Option(help="logit, linear or tuned (a fitted lens: see pivotlens fit-lens).")] = "logit"

    def lens_name(self) -> str:
        """``--lens`` as one known lens name (an unknown one, or several, fail in one line)."""
        names = parse_lens_names(self.lens)
        if len(names) > 1:
            raise InputError(f"--lens {self.lens}: this command reads the layers with one lens; give one of them")
        return names[0]
