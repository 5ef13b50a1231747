"""``pivotlens lambda`` and ``lens``: bad requests fail in one line, before any model loads."""

from __future__ import annotations

import pytest

from analyses.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lambda", "--langs", "fa"], "no cloze sentences for 'fa' in"),
        (
            ["lambda", "--task", "translation", "--source", "de", "--langs", "de"],
            "use --task repetition if repetition is meant",
        ),
        (["lambda", "--floor", "0"], "--floor must be positive"),
        (["lens", "--target", "fa"], "cloze.csv"),
    ],
)
def test_bad_requests_exit_2_naming_the_fix(monkeypatch, capsys, argv, message):
    monkeypatch.setattr("sys.argv", ["pivotlens", "--model", "no-such-model", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "no-such-model" not in err  # refused before the model is looked up
