"""Collects the architecture matrix's outcomes and notes; with ``PIVOTLENS_MATRIX_JSON`` set, writes
them there at the end of the session (``scripts/support_table.py`` renders them as
``docs/architectures.md``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

MATRIX_JSON_ENV = "PIVOTLENS_MATRIX_JSON"
_ROWS: list[dict[str, object]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not item.module.__name__.endswith("test_architecture_matrix") or not hasattr(item, "callspec"):
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        params = item.callspec.params
        error = (
            ""
            if report.passed
            else (call.excinfo.exconly().splitlines() or [""])[0]
            if call.excinfo
            else report.outcome
        )
        _ROWS.append(
            {
                "check": item.originalname,
                "arch": params["arch"],
                "backend": params.get("backend_name", "both"),
                "outcome": report.outcome,
                "error": error,
                "architecture": next((value for key, value in item.user_properties if key == "architecture"), None),
                "notes": [value for key, value in item.user_properties if key == "note"],
            }
        )


def pytest_sessionfinish(session):
    path = os.environ.get(MATRIX_JSON_ENV)
    if path and _ROWS:
        Path(path).write_text(json.dumps(_ROWS, indent=1, ensure_ascii=False))
