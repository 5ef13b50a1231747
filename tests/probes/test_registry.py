"""The method registry: probes (and every other part) are found by name, with paper, documented
columns and family; a clash of names and an unknown name fail clearly."""

from __future__ import annotations

import pytest

from probes.backend.errors import PivotlensError, UnknownNameError
from probes.registry import PROBES, families, register_probe


def test_builtin_probes_register_with_paper_and_documented_columns():
    probes = PROBES.parts()
    assert {"lens", "exit", "confusion"} <= set(probes)
    for spec in probes.values():
        assert spec.paper and spec.columns and all(isinstance(v, str) and v for v in spec.columns.values())
    assert probes["confusion-lens"].family == "confusion" and probes["lens"].family == "lens"
    assert {"lens", "lens-eval"} <= set(families()["lens"]["probe"])


def test_unknown_probe_names_the_registered_ones():
    with pytest.raises(UnknownNameError, match="registered: .*lens") as error:
        PROBES.get("no-such-probe")
    assert isinstance(error.value, PivotlensError) and str(error.value).startswith("no probe named 'no-such-probe'")


def test_a_second_probe_under_a_taken_name_is_refused():
    lens = PROBES.get("lens")
    with pytest.raises(ValueError, match="a probe named 'lens' is already registered"):
        register_probe("lens", paper=lens.paper, columns=lens.columns, version=lens.version)(lambda backend: None)
    assert PROBES.get("lens") is lens


def test_an_entry_point_that_cannot_be_imported_is_one_line_naming_it(tmp_path, monkeypatch):
    dist = tmp_path / "broken_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-method\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[pivotlens.methods]\nbroken = no_such_module_here\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PivotlensError, match="entry point broken = 'no_such_module_here' cannot be imported") as error:
        PROBES.parts()
    assert "fix or uninstall" in str(error.value) and "\n" not in str(error.value)
