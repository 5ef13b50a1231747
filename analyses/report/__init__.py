"""Per-language diagnosis reports: one HTML page per language (and model set), self-contained or
sharing its folder's plotly.js, assembled from report sections registered by name (one per probe)."""

from analyses.report.sections import (
    SECTIONS,
    ReportContext,
    SectionResult,
    SectionSpec,
    Verdict,
    ordered_sections,
    register_section,
)

__all__ = [
    "SECTIONS",
    "ReportContext",
    "SectionResult",
    "SectionSpec",
    "Verdict",
    "ordered_sections",
    "register_section",
]
