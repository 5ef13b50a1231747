"""Report sections, registered by name. A section runs (or reuses from the results store) one
probe for one model and language and returns verdicts, figures and tables; the page is the list
of sections. A user adds a section with :func:`register_section`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from probes.backend import Backend
from probes.backend.store import ResultsStore


@dataclass(frozen=True)
class Verdict:
    """One answer with the evidence behind it and how sure it is."""

    question: str
    answer: str
    evidence: str
    uncertainty: str


@dataclass(frozen=True)
class Page:
    """A page written beside the report (under ``<lang>/``) and linked from its section."""

    name: str  # file name
    label: str  # link text
    html: str


@dataclass
class SectionResult:
    title: str
    verdicts: list[Verdict] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. why part of the section could not run
    shown: list[str] = field(default_factory=list)  # names of tables also printed on the page
    pages: list[Page] = field(default_factory=list)  # e.g. example prompts in the lens explorer


@dataclass
class ReportContext:
    backend: Backend
    lang: str
    store: ResultsStore
    quick: bool = False  # smaller samples: for tests and a first look
    batch_size: int = 16
    lenses: tuple[str, ...] = ("logit",)  # the first reads the layers; with more, the lens section compares decisions


Section = Callable[[ReportContext], SectionResult]
SECTIONS: dict[str, Section] = {}
_ORDER: dict[str, float] = {}


def register_section(name: str, *, order: float = 100.0) -> Callable[[Section], Section]:
    """Register ``fn`` as the report section ``name``; sections appear by ``order`` (the
    questions of the report in their natural sequence), then by name."""

    def decorate(fn: Section) -> Section:
        SECTIONS[name] = fn
        _ORDER[name] = order
        return fn

    return decorate


def ordered_sections() -> list[str]:
    """Every section's name in page order (pivotlens's own sections included)."""
    import analyses.report

    for module in pkgutil.iter_modules(analyses.report.__path__):
        if module.name.endswith("_section"):
            importlib.import_module(f"analyses.report.{module.name}")
    return sorted(SECTIONS, key=lambda name: (_ORDER[name], name))
