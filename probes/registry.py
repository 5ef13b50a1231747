"""Probes registered by name, so the CLI, the report and a user's own probe are found the same way.

A user adds a probe with::

    from probes import register_probe

    @register_probe("my-probe", paper="Me et al. 2026", columns={"lang": "...", "value": "..."})
    def my_probe(backend, **params) -> pandas.DataFrame: ...
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    run: Callable[..., pd.DataFrame]
    paper: str
    columns: dict[str, str]  # column -> meaning: the one place each table's columns are documented


PROBES: dict[str, ProbeSpec] = {}


def register_probe(name: str, *, paper: str, columns: dict[str, str]):
    """Decorator: register ``fn`` under ``name`` with the paper it follows and its documented columns."""

    def decorate(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        if name in PROBES and PROBES[name].run is not fn:
            raise ValueError(f"a probe named {name!r} is already registered")
        PROBES[name] = ProbeSpec(name, fn, paper, columns)
        return fn

    return decorate


def load_builtin_probes() -> dict[str, ProbeSpec]:
    """Import pivotlens's own probe modules, so every built-in probe is registered."""
    import probes

    for module in pkgutil.iter_modules(probes.__path__):
        if not module.ispkg and module.name != "registry":
            importlib.import_module(f"probes.{module.name}")
    return PROBES


def get_probe(name: str) -> ProbeSpec:
    if name not in PROBES:
        load_builtin_probes()
    if name not in PROBES:
        raise KeyError(f"no probe named {name!r}; registered: {', '.join(sorted(PROBES)) or 'none'}")
    return PROBES[name]
