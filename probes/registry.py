"""Probes registered by name, so the CLI, the report and a user's own probe are found the same way.

A user adds a probe with::

    from probes import register_probe

    @register_probe("my-probe", paper="Me et al. 2026", columns={"lang": "...", "value": "..."}, version=1)
    def my_probe(backend, **params) -> pandas.DataFrame: ...
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from probes.backend.store import PROBE_VERSIONS


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    run: Callable[..., pd.DataFrame]
    paper: str
    columns: dict[str, str]  # column -> meaning: the one place each table's columns are documented
    version: int = 1  # bump when the probe's numbers change: part of every stored run's key


PROBES: dict[str, ProbeSpec] = {}


def register_probe(name: str, *, paper: str, columns: dict[str, str], version: int = 1):
    """Decorator: register ``fn`` under ``name`` with the paper it follows, its documented columns
    and its ``version``. The version is part of the results-store key, so bumping it when the
    probe's numbers change makes every stored run of the old code be computed again
    (``tests/probes/test_probe_versions.py`` fails when the numbers change and the version does not)."""

    def decorate(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        if name in PROBES and PROBES[name].run is not fn:
            raise ValueError(f"a probe named {name!r} is already registered")
        PROBES[name] = ProbeSpec(name, fn, paper, columns, version)
        PROBE_VERSIONS[name] = version
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
