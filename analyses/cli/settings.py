"""Global CLI options shared by every command, and the checks every option passes before any
model loads (each failure is one line naming the fix, exit code 2)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from probes.backend.errors import InputError

if TYPE_CHECKING:
    from probes.backend import BackendName

BACKENDS = ("transformer-lens", "nnsight")
Choice = TypeVar("Choice", bound=str)


@dataclass(frozen=True)
class Settings:
    model: str
    backend: str
    device: str
    dtype: str
    batch_size: int
    out: str
    results: str | None

    @property
    def out_dir(self) -> Path:
        path = Path(self.out)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def check(self) -> None:
        """Every global option, without loading a model."""
        from probes.backend.models import DTYPE_NAMES, check_device, check_model_spec

        if self.backend not in BACKENDS:
            raise InputError(f"unknown --backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPE_NAMES:
            raise InputError(f"unknown --dtype {self.dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
        check_device(self.device)
        check_model_spec(self.model)
        check_writable(self.out, "--out")
        if self.results:
            check_writable(self.results, "--results")

    @property
    def backend_name(self) -> BackendName:
        """``--backend``, typed as one of :data:`BACKENDS` (an unknown name fails as in :meth:`check`)."""
        return check_choice(self.backend, BACKENDS, "--backend")

    def load_backend(self, model: str | None = None):
        from probes.backend import load

        return load(model or self.model, backend=self.backend_name, device=self.device, dtype=self.dtype)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pivotlens {metadata.version('pivotlens')}")
        raise typer.Exit()


def check_writable(folder: str | os.PathLike[str], option: str) -> None:
    """``folder`` exists and is writable, or can be created (its nearest existing parent is)."""
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"{option} {folder}: {existing} is a file, not a folder; choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {folder}: {existing} is not writable; choose a folder you can write to")


def check_languages(spec: str, option: str = "--langs") -> list[str]:
    """Comma-separated language codes: known, at least one, each once (a repeat is dropped
    with a warning, so it is not counted twice)."""
    from probes.backend.languages import parse_languages

    with warnings.catch_warnings(record=True) as repeated:
        warnings.simplefilter("always")
        try:
            codes = parse_languages(spec)
        except InputError as exc:
            raise InputError(f"{option} {exc}") from None
    for warning in repeated:
        typer.secho(f"warning: {option} {spec}: {str(warning.message).split(': ', 1)[-1]}", err=True)
    return codes


def check_layer(layer: int | None, depth: int | None, model: str, option: str = "--layer") -> None:
    """A 0-based layer of the model (``depth`` None: not known before loading, not checked)."""
    if layer is not None and depth is not None and not 0 <= layer < depth:
        raise InputError(f"{option} {layer} is outside {model}'s {depth} layers; use 0 to {depth - 1}")


def check_choice(value: str, choices: Sequence[Choice], option: str) -> Choice:
    """``value`` as the one of ``choices`` it equals (so typed as the choices are), else one line naming them."""
    for choice in choices:
        if value == choice:
            return choice
    raise InputError(f"unknown {option} {value!r}; use one of {', '.join(choices)}")
