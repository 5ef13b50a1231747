"""Report sections, registered by name in the method registry (``probes.registry``). A section
runs (or reuses from the results store) one probe for one model and language and returns
verdicts, figures and tables; the page is the list of sections. A method adds its section with
:func:`register_section` in a module of its own (see ``docs/adding-a-method.md``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from probes.backend import Backend
from probes.backend.store import ResultsStore
from probes.registry import Shelf


@dataclass(frozen=True)
class Verdict:
    """One answer with the evidence behind it and how sure it is."""

    question: str
    answer: str
    evidence: str
    uncertainty: str


@dataclass(frozen=True)
class Page:
    """A figure on a page of its own, written beside the report (under ``<lang>/``) and linked
    from its section."""

    name: str  # file name
    label: str  # link text
    figure: go.Figure
    title: str  # the page's title


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


@dataclass(frozen=True)
class SectionSpec:
    """A registered report section: ``run`` answers for one model and language."""

    name: str
    run: Section
    order: float  # sections appear by order (the report's questions in their natural sequence), then by name
    family: str


#: Every report section: pivotlens's own (the modules of ``analyses.report``) and those of the
#: ``pivotlens.methods`` entry points.
SECTIONS: Shelf[SectionSpec] = Shelf("section", "analyses.report")


def register_section(name: str, *, order: float = 100.0, family: str = "") -> Callable[[Section], Section]:
    """Register ``fn`` as the report section ``name`` of ``family`` (default: ``name``); sections
    appear by ``order``, then by name."""

    def decorate(fn: Section) -> Section:
        SECTIONS.add(SectionSpec(name, fn, order, family or name))
        return fn

    return decorate


def ordered_sections() -> list[str]:
    """Every registered section's name in page order."""
    parts = SECTIONS.parts()
    return sorted(parts, key=lambda name: (parts[name].order, name))
