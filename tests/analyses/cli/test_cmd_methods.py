"""A method from outside pivotlens: the example package of ``docs/adding-a-method.md``, installed
from the page's own code (its modules and its ``pivotlens.methods`` entry points) into a folder
on ``sys.path``, joins the registry with no edit of pivotlens. ``pivotlens methods`` lists it,
``pivotlens diagnose --sections entropy`` writes its section, and ``pivotlens figures --only
entropy`` computes its data with its own command (in this process) and draws its figure. Its
numbers are checked against the model's own logits."""

from __future__ import annotations

import math
import re
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from analyses.cli import app
from analyses.figures.catalog import FIGURES
from analyses.report.sections import SECTIONS
from probes.backend import load
from probes.backend.store import PROBE_VERSIONS
from probes.registry import ENTRY_POINT_GROUP, PROBES, REGISTRY, families

PAGE = Path(__file__).resolve().parents[3] / "docs" / "adding-a-method.md"
BLOCK = re.compile(r"```(python|toml)\n(.*?)```", re.DOTALL)


def install_from_the_page(root: Path) -> dict[str, str]:
    """Write the page's modules (each block opens with ``# <path>``) and a dist-info folder with
    the page's entry points under ``root``; returns the entry points."""
    entry_points: dict[str, str] = {}
    for language, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        if language == "toml":
            entry_points = tomllib.loads(code)["project"]["entry-points"][ENTRY_POINT_GROUP]
            continue
        path = root / code.splitlines()[0].removeprefix("# ")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    (root / "pivotlens_entropy" / "__init__.py").write_text('"""The example method."""\n', encoding="utf-8")
    dist = root / "pivotlens_entropy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pivotlens-entropy\nVersion: 0.1\n", encoding="utf-8")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {module}" for name, module in entry_points.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return entry_points


@pytest.fixture
def outside_method(tmp_path, monkeypatch):
    """The example installed for one test: its registrations and modules are gone afterwards."""
    for shelf in (PROBES, SECTIONS, FIGURES):  # pivotlens's own parts, registered before the copy
        shelf.parts()
    for kind in list(REGISTRY):
        monkeypatch.setitem(REGISTRY, kind, dict(REGISTRY[kind]))
    versions = dict(PROBE_VERSIONS)
    entry_points = install_from_the_page(tmp_path / "site-packages")
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    yield entry_points
    PROBE_VERSIONS.clear()
    PROBE_VERSIONS.update(versions)
    for module in [m for m in sys.modules if m.split(".")[0] == "pivotlens_entropy"]:
        del sys.modules[module]


def invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def entropy_bits(logits: torch.Tensor) -> float:
    log_p = torch.log_softmax(logits.double(), dim=-1)
    return float(-(log_p.exp() * log_p).sum() / math.log(2))


def test_the_page_names_every_registering_module_as_an_entry_point(outside_method, tmp_path):
    modules = {path.stem for path in (tmp_path / "site-packages" / "pivotlens_entropy").glob("[!_]*.py")}
    assert modules == {"probe", "pipeline", "figures", "section", "command"}
    assert sorted(outside_method.values()) == sorted(f"pivotlens_entropy.{m}" for m in modules - {"pipeline"})


def test_a_method_from_outside_joins_the_registry_the_report_and_the_figures(
    outside_method, tiny_model_folder, tmp_path
):
    assert "entropy" not in families()
    invoke(["methods"])
    assert families()["entropy"] == {"probe": ["entropy"], "section": ["entropy"], "figures": ["entropy"]}
    assert PROBE_VERSIONS["entropy"] == 1
    help_text = invoke(["--help"]).output
    assert "entropy" in help_text and "Next-token entropy per layer" in help_text

    common = ["--model", str(tiny_model_folder), "--results", str(tmp_path / "store")]
    unknown = CliRunner().invoke(app, [*common, "diagnose", "--lang", "fr", "--sections", "nope"])
    assert unknown.exit_code != 0 and "entropy" in str(unknown.exception)
    invoke([*common, "--out", str(tmp_path / "report"), "diagnose", "--lang", "fr", "--sections", "entropy", "--quick"])
    page = (tmp_path / "report" / "report_fr.html").read_text(encoding="utf-8")
    assert "Next-token entropy" in page and "How sure is the model of the next token" in page
    verdicts = pd.read_csv(tmp_path / "report" / "fr" / "verdicts.csv")
    assert list(verdicts["question"]) == ["How sure is the model of the next token at its output?"]

    # the data is missing, so `figures` runs the family's command in this process (a subprocess
    # would not find the example, which is on this process's sys.path only)
    results = tmp_path / "results"
    invoke(
        [
            *common,
            "--out",
            str(tmp_path / "figs"),
            "figures",
            "--results-dir",
            str(results),
            "--only",
            "entropy",
            "--formats",
            "",
        ]
    )
    manifest = pd.read_csv(tmp_path / "figs" / "manifest.csv")
    assert list(zip(manifest["family"], manifest["figure"], manifest["status"])) == [("entropy", "entropy", "ok")]
    assert (tmp_path / "figs" / "entropy__entropy.html").is_file()

    # the table the command wrote: at the last layer, the entropy of the model's own logits
    table = pd.read_csv(manifest["data"].iloc[0])
    assert table.groupby("lang")["item"].nunique().to_dict() == {"fr": 4, "zh": 4}
    backend = load(str(tiny_model_folder))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_folder).eval()
    last = table[table["layer"] == table["layer"].max()]
    for prompt, stored in zip(last["item"], last["entropy_bits"]):
        with torch.no_grad():
            logits = model(torch.tensor([backend.tokenize(prompt)])).logits[0, -1]
        assert stored == pytest.approx(entropy_bits(logits), abs=1e-4)
