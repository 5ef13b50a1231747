"""Probes are found by name, built-in ones without importing their modules first."""

from __future__ import annotations

import pytest

from probes.registry import get_probe, load_builtin_probes


def test_builtin_probes_register_with_paper_and_documented_columns():
    probes = load_builtin_probes()
    assert {"lens", "exit", "confusion"} <= set(probes)
    for spec in probes.values():
        assert spec.paper and spec.columns and all(isinstance(v, str) and v for v in spec.columns.values())


def test_unknown_probe_names_the_registered_ones():
    with pytest.raises(KeyError, match="registered: .*lens"):
        get_probe("no-such-probe")
