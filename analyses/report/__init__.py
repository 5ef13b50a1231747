"""Per-language diagnosis reports: one self-contained HTML page per language (and model set),
assembled from report sections registered by name (one per probe)."""

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
