"""``pivotlens models`` reports a cached model as cached only when the cache check passes."""

from __future__ import annotations

from analyses.cli.cmd_models import models as list_models
from probes.backend import models
from tests.probes.backend.test_models import fake_embedded  # noqa: F401 (fixture)
from tests.probes.backend.test_store import damage_file


def _row(capsys, name: str) -> str:
    list_models()
    return next(line for line in capsys.readouterr().out.splitlines() if name in line)


def test_a_damaged_cache_is_listed_as_not_cached(fake_embedded, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COLUMNS", "400")  # one line per row
    assert "not converted yet" in _row(capsys, "tiny-embedded")
    folder = models.ensure_embedded("tiny-embedded")
    assert "yes" in _row(capsys, "tiny-embedded")
    damage_file(folder / "model.safetensors", "flip")  # same size: only the checksum tells
    assert "no: model.safetensors does not match its recorded sha256" in _row(capsys, "tiny-embedded")
    (folder / "config.json").write_text("{}")
    damage_file(folder / "model.safetensors", "flip")  # flipped back: the weights are whole again
    assert "no: config.json" in _row(capsys, "tiny-embedded")
