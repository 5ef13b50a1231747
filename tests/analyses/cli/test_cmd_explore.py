"""``pivotlens explore`` writes the explorer as one offline page, the same bytes each time, and
refuses bad input with one line before any model loads."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from analyses.cli import app
from analyses.cli.settings import Settings
from analyses.figures.explore import DIV_ID
from probes.backend.errors import PivotlensError


def test_explore_writes_an_offline_deterministic_page(tiny_model_folder, tmp_path):
    pages = []
    for name in ("a.html", "b.html"):
        result = CliRunner().invoke(
            app,
            [
                "--model",
                str(tiny_model_folder),
                "--out",
                str(tmp_path / name),
                "explore",
                "--prompt",
                "the cloud is white and the river is",
                "--target",
                "long",
                "--color",
                "lang",
            ],
        )
        assert result.exit_code == 0, result.output
        pages.append((tmp_path / name / "explore.html").read_bytes())
    assert pages[0] == pages[1]
    page = pages[0].decode()
    assert f'id="{DIV_ID}"' in page
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inlined, nothing from a CDN
    assert "top-1 language" in page


def test_bad_input_is_one_line_and_exit_code_2_before_loading(tiny_model_folder, monkeypatch):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "analyses.cli",
            "--model",
            str(tiny_model_folder),
            "explore",
            "--prompt",
            " ",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: the prompt is empty; pass the text whose layers you want to see"

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(Settings, "load_backend", refuse)
    for option, message in (
        (["--prompt", " "], "the prompt is empty"),
        (["--prompt", "hi", "--lens", "nope"], "unknown lens 'nope'; available: logit"),
        (["--prompt", "hi", "--color", "hue"], "unknown colouring 'hue'; use one of prob, entropy, lang"),
        (["--prompt", "hi", "--latent", "xx"], "unknown language code 'xx'"),
    ):
        result = CliRunner().invoke(app, ["--model", str(tiny_model_folder), "explore", *option])
        assert isinstance(result.exception, PivotlensError) and str(result.exception).startswith(message)
