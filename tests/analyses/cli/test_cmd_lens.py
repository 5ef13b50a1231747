"""``pivotlens lambda`` and ``lens``: bad requests fail in one line, before any model loads."""

from __future__ import annotations

import pytest

from analyses.cli import main
from analyses.cli.settings import Settings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lambda", "--langs", "fa"], "has no column for fa"),
        (
            ["lambda", "--task", "translation", "--source", "de", "--langs", "de"],
            "use --task repetition if repetition is meant",
        ),
        (["lambda", "--floor", "0"], "--floor must be positive"),
        (["lens", "--target", "fa"], "concepts.csv has no column for fa"),
    ],
)
def test_bad_requests_exit_2_naming_the_fix(monkeypatch, capsys, argv, message):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the request was checked")

    monkeypatch.setattr(Settings, "load_backend", refuse)
    monkeypatch.setattr("sys.argv", ["pivotlens", "--model", "gemma-3-270m", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
