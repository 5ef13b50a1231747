"""Report sections, registered by name. A section runs (or reuses from the results store) one
probe for one model and language and returns verdicts, figures and tables; the page is the list
of sections. A user adds a section with :func:`register_section`."""

from __future__ import annotations

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


@dataclass
class SectionResult:
    title: str
    verdicts: list[Verdict] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass
class ReportContext:
    backend: Backend
    lang: str
    store: ResultsStore
    quick: bool = False  # smaller samples: for tests and a first look
    batch_size: int = 16


Section = Callable[[ReportContext], SectionResult]
SECTIONS: dict[str, Section] = {}


def register_section(name: str) -> Callable[[Section], Section]:
    def decorate(fn: Section) -> Section:
        SECTIONS[name] = fn
        return fn

    return decorate
