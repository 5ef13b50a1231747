"""The one registry of methods: every probe, report section and figure family, by kind and name.

A method family (``"lens"``, ``"confusion"``, ...) registers each of its parts from the module of
the layer the part belongs to, with that layer's decorator:

- a probe in ``probes/``: :func:`register_probe` (the paper, the table's columns, the ``version``);
- a report section in ``analyses/report/``: ``analyses.report.register_section``;
- a figure family in ``analyses/figures/``: ``analyses.figures.catalog.register_figures``.

Each decorator adds the part to :data:`REGISTRY` through the :class:`Shelf` of its kind. A shelf
finds its parts by importing every module of the package that holds its kind (pivotlens's own
methods) and every module named by a ``pivotlens.methods`` entry point of an installed package
(a method from outside pivotlens, added without editing it)::

    # the outside package's pyproject.toml
    [project.entry-points."pivotlens.methods"]
    entropy-probe = "my_package.entropy_probe"
    entropy-section = "my_package.entropy_section"

The command line, the report and the figure catalog read their shelves; ``pivotlens methods``
lists every family with its parts. See ``docs/adding-a-method.md``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from probes.backend.errors import PivotlensError, UnknownNameError

if TYPE_CHECKING:
    import pandas as pd

#: The entry-point group through which an installed package adds methods (each value a module).
ENTRY_POINT_GROUP = "pivotlens.methods"


class Part(Protocol):
    """What every registered part has: its own name and the method family it belongs to."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...


PartT = TypeVar("PartT", bound=Part)
Fn = TypeVar("Fn", bound=Callable[..., Any])

#: kind ("probe", "section", "figures") -> name -> part: every registered part of every method.
REGISTRY: dict[str, dict[str, Part]] = {}


def method_entry_points() -> list[EntryPoint]:
    """The ``pivotlens.methods`` entry points of the installed packages, each naming a module."""
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)


def import_methods(package: str) -> None:
    """Import every module of ``package`` and every module of the ``pivotlens.methods`` entry
    points, so that every part they register is in :data:`REGISTRY`."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not module.ispkg:
            importlib.import_module(f"{package}.{module.name}")
    for entry in method_entry_points():
        try:
            entry.load()
        except ImportError as exc:
            raise PivotlensError(
                f"the {ENTRY_POINT_GROUP} entry point {entry.name} = {entry.value!r} cannot be imported ({exc}); "
                "fix or uninstall the package that declares it"
            ) from exc


class Shelf(Generic[PartT]):
    """The parts of one kind in :data:`REGISTRY`, found in ``package`` and the entry points."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        REGISTRY.setdefault(kind, {})

    def add(self, part: PartT) -> None:
        """Register ``part``; another part under the same name is an error (re-adding the same is not)."""
        parts = REGISTRY[self.kind]
        if part.name in parts and parts[part.name] != part:
            raise ValueError(f"a {self.kind} named {part.name!r} is already registered")
        parts[part.name] = part

    def parts(self) -> dict[str, PartT]:
        """Every registered part of this kind by name, after importing the modules that register them."""
        import_methods(self.package)
        return cast("dict[str, PartT]", dict(REGISTRY[self.kind]))  # only add() writes this kind

    def get(self, name: str) -> PartT:
        """The part called ``name``; an unknown name raises, listing the registered ones."""
        parts = REGISTRY[self.kind] if name in REGISTRY[self.kind] else self.parts()
        if name not in parts:
            raise UnknownNameError(f"no {self.kind} named {name!r}; registered: {', '.join(sorted(parts)) or 'none'}")
        return cast("PartT", parts[name])


def families() -> dict[str, dict[str, list[str]]]:
    """family -> kind -> names of its registered parts (of the shelves read so far)."""
    table: dict[str, dict[str, list[str]]] = {}
    for kind, parts in REGISTRY.items():
        for name, part in sorted(parts.items()):
            table.setdefault(part.family, {}).setdefault(kind, []).append(name)
    return dict(sorted(table.items()))


# ---- probes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    run: Callable[..., pd.DataFrame]
    paper: str
    columns: dict[str, str]  # column -> meaning: the one place each table's columns are documented
    version: int  # bump when the probe's numbers change: part of every stored run's key
    family: str


PROBES: Shelf[ProbeSpec] = Shelf("probe", "probes")


def register_probe(
    name: str, *, paper: str, columns: dict[str, str], version: int = 1, family: str = ""
) -> Callable[[Fn], Fn]:
    """Decorator: register ``fn`` as the probe ``name`` of ``family`` (default: ``name``) with the
    paper it follows, its documented columns and its ``version``. The version is part of the
    results-store key, so bumping it when the probe's numbers change makes every stored run of the
    old code be computed again (``tests/probes/test_probe_versions.py`` fails when the numbers
    change and the version does not)."""

    def decorate(fn: Fn) -> Fn:
        from probes.backend.store import PROBE_VERSIONS  # here, so the CLI reads entry points without pandas

        PROBES.add(ProbeSpec(name, fn, paper, columns, version, family or name))
        PROBE_VERSIONS[name] = version
        return fn

    return decorate
