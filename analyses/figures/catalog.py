"""The papers' figures that pivotlens reproduces, registered by name in the method registry
(``probes.registry``): each is built from a stored result table (compute -> statistic -> figure),
and each names the command that computes its data when it is missing. ``pivotlens figures``
walks :data:`FIGURES`; a method adds its figures with :func:`register_figures` in a module of its
own (see ``docs/adding-a-method.md``)."""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from analyses.figures.confusion import lens_at_cp_figure, pass_rate_figure, sweep_figure
from analyses.figures.exit import exit_figures
from analyses.figures.importance import (
    concentration_figure,
    dimension_figure,
    freeze_figure,
    importance_map_figure,
    mask_figure,
    monolingual_figure,
    perturbation_figure,
    removal_figure,
    structure_figure,
)
from analyses.figures.interference import cosine_figure, fig2_figure, loss_figure, pivot_probability_figure
from analyses.figures.io import save_figure
from analyses.figures.latent import lambda_figure, lens_figure
from analyses.figures.layer_swap import grid_figure, table1_figure
from analyses.figures.recipes import recipe_figures
from analyses.figures.weight_change import weight_change_figure
from analyses.stats.prom_lambda import analyse
from analyses.stats.recipes import ModelInternals
from probes.backend.store import read_result, write_text_atomic
from probes.registry import Shelf

Builder = Callable[[Path, str], dict[str, go.Figure]]
#: Runs one ``pivotlens`` command line (its arguments after ``pivotlens``) in this process; the
#: command line passes it to :func:`regenerate` to compute missing data.
RunCommand = Callable[[list[str]], None]


@dataclass(frozen=True)
class PaperFigure:
    """A figure family: ``build(data_file, model)`` returns ``{figure name: figure}``."""

    name: str
    paper: str
    data: str  # the data file, relative to the results root; ``{model}`` is filled in
    build: Builder
    command: str | None  # the pivotlens command that writes ``data``; None: needs training, run it yourself
    models: tuple[str, ...] | None  # a data file without {model} holds these models' results only
    family: str

    def data_file(self, root: Path, model: str) -> Path:
        return root / self.data.format(model=model)

    def command_args(self, root: Path, model: str) -> list[str]:
        """The ``pivotlens`` arguments that write the data file of ``model`` under ``root``."""
        assert self.command is not None
        return ["--model", model, *shlex.split(self.command.format(root=root, model=model))]


#: Every figure family: pivotlens's own (the modules of ``analyses.figures``) and those of the
#: ``pivotlens.methods`` entry points.
FIGURES: Shelf[PaperFigure] = Shelf("figures", "analyses.figures")


def register_figures(
    name: str,
    *,
    paper: str,
    data: str,
    command: str | None,
    models: tuple[str, ...] | None = None,
    family: str = "",
) -> Callable[[Builder], Builder]:
    """Register ``build`` as the figure family ``name`` of method ``family`` (default: ``name``;
    see :class:`PaperFigure`)."""

    def decorate(build: Builder) -> Builder:
        FIGURES.add(PaperFigure(name, paper, data, build, command, models, family or name))
        return build

    return decorate


# ---- the catalog ----------------------------------------------------------------------------


@register_figures(
    "lens",
    paper="Wendler et al. 2024 Fig. 2; PROM Fig. 1 and 4 (lambda)",
    data="lens/{model}/lens.parquet",
    command="--out {root}/lens/{model} lambda --langs all",
)
def _lens(path: Path, model: str) -> dict[str, go.Figure]:
    table = read_result(path)
    n_layers = int(table["layer"].max()) + 1
    results = analyse(table, n_layers=n_layers)
    figures = {"lambda": lambda_figure(results.lambdas, title=f"{model}: PROM lambda per language")}
    for lang in sorted(results.curves["lang"].unique()):
        figures[f"lens_{lang}"] = lens_figure(
            results.curves, lang, title=f"{model}: logit lens, target {lang} (95% CI)"
        )
    return figures


@register_figures(
    "exit",
    paper="AdaInfer (Fan et al. 2024) Fig. 1, Fig. 3 and Tables 2-3",
    data="exit/{model}/exit_exits.parquet",
    command="--out {root}/exit/{model} exit --task sentiment,topic,mcqa --lang en,fr,zh --shots 3 --demos per-item "
    "--n 100",
)
def _exit(path: Path, model: str) -> dict[str, go.Figure]:
    tables = {name: pd.read_csv(path.parent / f"exit_{name}.csv") for name in ("layers", "features", "static")}
    return exit_figures({**tables, "exits": read_result(path)})


@register_figures(
    "interference",
    paper="PROM Sec. 2.1 (gradient cosine per layer, English vs each language)",
    data="interference/{model}/summary_layer.csv",
    command="--batch-size 4 --out {root}/interference/{model} interference --langs en,ar,es,ja,sw,zh "
    "--batches 6 --max-length 128 --split train --params blocks",
)
def _interference(path: Path, model: str) -> dict[str, go.Figure]:
    return {"cosine_layers": cosine_figure(pd.read_csv(path), title=f"{model}: gradient cosine per block (95% CI)")}


@register_figures(
    "prom_fig2",
    paper="PROM Fig. 2 (target only vs target + English vs pivoted)",
    data="interference/{model}/fig2/summary_layer.csv",
    command="--batch-size 4 --out {root}/interference/{model}/fig2 interference-fig2 --targets sw --pivot en "
    "--batches 6 --max-length 128 --split train --params blocks",
    family="interference",
)
def _fig2(path: Path, model: str) -> dict[str, go.Figure]:
    summary = pd.read_csv(path)
    return {
        f"fig2_{t}": fig2_figure(rows, title=f"{model}: PROM Fig. 2, target {t}")
        for t, rows in summary.groupby("target")
    }


@register_figures(
    "prom_fig3",
    paper="PROM Fig. 3 (pivot probability and interference before/after fine-tuning)",
    data="interference/fig3/{model}-sw/curves.csv",
    command=None,
    family="interference",
)
def _fig3(path: Path, model: str) -> dict[str, go.Figure]:
    folder = path.parent
    return {
        "fig3_pivot_probability": pivot_probability_figure(
            pd.read_csv(path), lang="sw", title=f"{model}: PROM Fig. 3, sw"
        ),
        "fig3_interference": cosine_figure(
            pd.read_csv(folder / "interference_summary.csv"),
            title=f"{model}: en vs sw gradient cosine before/after fine-tuning",
        ),
        "fig3_training_loss": loss_figure(pd.read_csv(folder / "training_logs.csv")),
    }


@register_figures(
    "confusion",
    paper="Marchisio et al. 2024 Tables 2-3 (pass rates) and Tables 8, 11 (mitigation sweep); "
    "Nie et al. 2025 (logit lens at confusion points)",
    data="confusion/{model}/metrics_with_ci.csv",
    command="--out {root} confusion --langs ar,de,es,fr,hi,ja,ko,ru,tr,zh --task both --n 4 --max-new-tokens 40",
)
def _confusion(path: Path, model: str) -> dict[str, go.Figure]:
    folder = path.parent
    figures = {"pass_rates": pass_rate_figure(pd.read_csv(path))}
    if (folder / "lens_at_cp.csv").is_file():
        figures["lens_at_cp"] = lens_at_cp_figure(pd.read_csv(folder / "lens_at_cp.csv"))
    if (folder / "sweep.csv").is_file():
        figures["sweep"] = sweep_figure(pd.read_csv(folder / "sweep.csv"))
    return figures


@register_figures(
    "regions",
    paper="Zhang et al. 2024 Fig. 2 (importance map), Tables 1, 3, 5 (removal), Fig. 3 (dimensions)",
    data="importance/{model}/removal.csv",
    family="regions",
    command="--batch-size 8 --out {root}/importance/{model} regions --langs ar,es,ru,zh,ko,vi,en",
)
def _regions(path: Path, model: str) -> dict[str, go.Figure]:
    folder = path.parent

    def table(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / f"{name}.csv")

    removal = pd.read_csv(path)
    base = removal[removal["region"] == "none"]
    figures = {
        "importance_map": importance_map_figure(table("importance_summary"), table("region_core_global"), model=model),
        "region_masks": mask_figure(table("region_density"), model=model),
        "region_concentration": concentration_figure(table("region_concentration"), model=model),
        "region_dimensions": dimension_figure(table("region_dimensions"), model=model),
        "removal_core": removal_figure(removal, model=model),
        "removal_monolingual": monolingual_figure(removal, model=model),
    }
    if (folder / "structured_removal.csv").is_file():
        figures["structured_removal"] = structure_figure(table("structured_removal"), base, model=model)
        figures["dimension_perturbation"] = perturbation_figure(table("dimension_perturbation"), base, model=model)
    if (folder / "freeze_demo.csv").is_file():
        figures["freeze_demo"] = freeze_figure(table("freeze_demo"), model=model)
    return figures


@register_figures(
    "layer_swap",
    paper="Bandarkar et al. 2025 Fig. 2 (weight-change maps) and Table 1 (layer swapping)",
    data="layer_swap/table1.csv",
    command=None,
    models=("gemma-3-270m",),
)
def _layer_swap(path: Path, model: str) -> dict[str, go.Figure]:
    folder = path.parent
    changes = pd.read_csv(folder / "weight_change.csv")
    maps = {str(expert): rows for expert, rows in changes.groupby("expert", sort=False)}
    figures = {
        "table1": table1_figure(pd.read_csv(path), title=f"{model}: layer swapping, accuracy per setting (95% CI)"),
        "weight_change": weight_change_figure(
            maps, "rel_frobenius", title=f"{model}: weight change per layer and module"
        ),
    }
    if (folder / "grid.csv").is_file():
        suggestions = pd.read_csv(folder / "suggestions.csv") if (folder / "suggestions.csv").is_file() else None
        figures["grid"] = grid_figure(pd.read_csv(folder / "grid.csv"), suggestions=suggestions)
    return figures


@register_figures(
    "recipes",
    paper="PLUG (Zhang et al. 2023) Table 1 (win/loss) and what each recipe changes inside the model",
    data="recipes/comparison.csv",
    command=None,
    models=("gemma-3-270m",),
)
def _recipes(path: Path, model: str) -> dict[str, go.Figure]:
    folder = path.parent
    comparison = pd.read_csv(path)

    def table(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / f"{name}.csv")

    inside = ModelInternals(table("lens_curves"), table("pivot_summary"), table("lambda"), table("interference"))
    return recipe_figures(comparison, table("win_loss_pairs"), logs=table("training_logs"), inside=inside)


# ---- regeneration ---------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def regenerate(
    root: Path,
    model: str,
    out: Path,
    *,
    names: list[str] | None = None,
    compute: RunCommand | None = None,
    formats: tuple[str, ...] = ("png", "svg"),
) -> pd.DataFrame:
    """Write every catalogued figure of ``model`` under ``out`` (HTML plus ``formats``), computing
    missing data with ``compute`` where the family names a command, and ``out/manifest.csv`` +
    ``.json``: figure -> paper -> data file (and its sha256), or why it is missing."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names or list(FIGURES.parts()):
        entry = FIGURES.get(name)
        path = entry.data_file(root, model)
        if entry.models is not None and model not in entry.models:
            rows.append(
                {
                    "family": name,
                    "figure": None,
                    "paper": entry.paper,
                    "data": str(path),
                    "data_sha256": None,
                    "files": None,
                    "status": f"missing: {path} holds results of {', '.join(entry.models)} only",
                }
            )
            continue
        if not path.is_file() and compute is not None and entry.command is not None:
            compute(entry.command_args(root, model))
        if not path.is_file():
            how = (
                f"pivotlens {shlex.join(entry.command_args(root, model))}"
                if entry.command
                else ("needs fine-tuning: see the README beside the data folder")
            )
            rows.append(
                {
                    "family": name,
                    "figure": None,
                    "paper": entry.paper,
                    "data": str(path),
                    "data_sha256": None,
                    "files": None,
                    "status": f"missing: {how}",
                }
            )
            continue
        for figure_name, figure in entry.build(path, model).items():
            files = [p.name for p in save_figure(figure, out / f"{name}__{figure_name}", formats=formats)]
            rows.append(
                {
                    "family": name,
                    "figure": figure_name,
                    "paper": entry.paper,
                    "data": str(path),
                    "data_sha256": _sha256(path),
                    "files": " ".join(files),
                    "status": "ok",
                }
            )
    manifest = pd.DataFrame(rows)
    write_text_atomic(manifest.to_csv(index=False), out / "manifest.csv")
    write_text_atomic(json.dumps(rows, indent=2, ensure_ascii=False), out / "manifest.json")
    return manifest
