"""Evaluation of cross-lingual instruction-data recipes (PLUG, Zhang et al. 2023; docs/methods/plug-recipes.md), and
what each recipe changes inside the model. Shared by ``pivotlens recipe-eval`` and the notebook.

Outside the model, on the held-out instructions of each target language (greedy answers,
:mod:`probes.instruction_answers`):

* the answer's language: LPR and WPR of the Language Confusion Benchmark
  (:mod:`analyses.stats.confusion_metrics`, percentile bootstrap 95% intervals over answers);
* chrF against the reference answer (sacrebleu chrF2: character 6-grams, β = 2), corpus level,
  with a percentile bootstrap 95% interval over answers;
* for PLUG models both the raw answer (``variant = full``) and the answer a user is shown, the
  pivot part removed by :func:`~analyses.interventions.recipes.strip_pivot` (``stripped``);
  every other model is shown its raw answer;
* pairwise win/loss between models in the layout of the paper's Table 1. The paper's judge is
  GPT-4; here the judge is **sentence-level chrF of the shown answer against the reference**:
  model A wins an instruction when its chrF exceeds B's by more than ``tie_margin`` points, and
  ``Δ = win% − loss%`` gets a bootstrap interval over instructions.

Inside the model, side by side with the base model: the logit-lens English and target curves of
the word-translation task with 95% bands (:mod:`analyses.pipelines.lens`), PROM's lambda at layer n
with its bootstrap interval (:mod:`analyses.stats.prom_lambda`), and the gradient cosine of the target
language against English per layer on held-out instruction batches, with Student-t 95% bands
over batch pairs (:mod:`analyses.pipelines.interference`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sacrebleu import CHRF

from analyses.figures import save_figure
from analyses.figures.recipes import recipe_figures
from analyses.interventions.recipes import PIVOT, RECIPES, read_recipe_card, strip_pivot
from analyses.pipelines.interference import InterferenceSetup, measure
from analyses.pipelines.lens import run_languages
from analyses.stats.chrf import corpus_chrf
from analyses.stats.confusion_metrics import ALL, compute_all_metrics, judge_completions
from analyses.stats.intervals import bootstrap_indices, percentile_interval
from analyses.stats.recipes import ModelInternals, inside_tables
from probes.backend import BackendName, load
from probes.backend.errors import DataFormatError
from probes.backend.store import ResultsStore, provenance, write_text_atomic
from probes.inputs.instruction_data import HELD_OUT, INSTRUCTIONS, load_instructions, ordered_ids, split_held_out
from probes.instruction_answers import run_answers

BASE = "base"
JUDGE = "sentence chrF (sacrebleu chrF2) of the shown answer vs the reference"
COMPARISON_COLUMNS = (
    "model",
    "recipe",
    "lang",
    "variant",
    "n",
    "n_scored",
    "lpr",
    "lpr_low",
    "lpr_high",
    "wpr",
    "wpr_low",
    "wpr_high",
    "chrf",
    "chrf_low",
    "chrf_high",
    "shown",
)


@dataclass(frozen=True)
class ModelEntry:
    """A model to evaluate: display ``label``, ``path`` (folder or embedded name), ``recipe``."""

    label: str
    path: str
    recipe: str


def model_entries(specs: Sequence[str]) -> list[ModelEntry]:
    """Entries from ``PATH`` or ``LABEL=PATH`` specs. The recipe comes from the ``recipe.json``
    a recipe training run leaves, else from a folder or label named after a recipe, else ``base``."""
    entries = []
    for spec in specs:
        label, _, path = spec.rpartition("=")
        path = path.strip()
        label = label.strip() or Path(path).name
        card = read_recipe_card(path) if Path(path).is_dir() else None
        named = [n for n in (Path(path).name, label) if n in RECIPES]
        recipe = str(card["recipe"]) if card else (named[0] if named else BASE)
        entries.append(ModelEntry(label, path, recipe))
    labels = [e.label for e in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise DataFormatError(f"several models are labelled {duplicates}; name them with LABEL=PATH")
    return entries


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings (small defaults: a 270M model on a shared CPU)."""

    data: str = str(INSTRUCTIONS)
    pivot: str = PIVOT
    n_held_out: int = HELD_OUT  # the last ids of data, never trained on by a recipe run
    max_new_tokens: int = 128  # the held-out references are at most ~75 gemma tokens
    plug_max_new_tokens: int = 256  # a PLUG answer writes x_p, y_p and y_t
    answer_batch_size: int = 10
    lens_limit: int | None = 60  # word-translation prompts per language (None: all)
    lens_batch_size: int = 16
    interference_pairs: int = 4  # k batch pairs per language
    interference_batch_size: int = 4
    interference_params: str = "blocks"
    inside: bool = True
    n_boot: int = 1000
    tie_margin: float = 1.0
    seed: int = 0
    backend: BackendName = "transformer-lens"
    device: str = "cpu"
    dtype: str = "float32"


@dataclass
class Measurements:
    """Raw probe tables of every model (each with ``model`` and ``recipe`` columns)."""

    answers: pd.DataFrame
    lens: pd.DataFrame | None = None
    interference: pd.DataFrame | None = None
    n_layers: int = 0


def held_out_ids(
    data: str | Path, langs: Sequence[str], pivot: str, n_held_out: int = HELD_OUT
) -> tuple[pd.DataFrame, list[str]]:
    """The instruction table and its last ``n_held_out`` ids (never trained on by a recipe run)."""
    table = load_instructions(data, [pivot, *langs])
    _, held = split_held_out(table, n_held_out)
    return table, ordered_ids(held)


def measure_models(
    entries: Sequence[ModelEntry],
    langs: Sequence[str],
    config: EvalConfig = EvalConfig(),
    store: ResultsStore | None = None,
    progress: bool = True,
) -> Measurements:
    """Answers, lens and interference tables of each model (one model in memory at a time;
    every run goes through the results store, so a re-run reuses finished work)."""
    store = store or ResultsStore()
    table, ids = held_out_ids(config.data, langs, config.pivot, config.n_held_out)
    answers, lens, interference = [], [], []
    n_layers = 0
    for entry in entries:
        backend = load(entry.path, backend=config.backend, device=config.device, dtype=config.dtype)
        n_layers = backend.n_layers
        tag = {"model": entry.label, "recipe": entry.recipe}
        budget = config.plug_max_new_tokens if entry.recipe == "plug" else config.max_new_tokens
        params = {"langs": list(langs), "ids": ids, "max_new_tokens": budget, "template": "auto"}
        run = store.run(provenance("instruction-answers", params, backend.describe(), [config.data]))
        found = (
            run.load()
            if run.finished
            else run_answers(
                backend,
                table,
                langs,
                ids,
                max_new_tokens=budget,
                batch_size=config.answer_batch_size,
                run=run,
                progress=progress,
            )
        )
        answers.append(found.assign(**tag))
        if config.inside:
            found = run_languages(
                backend,
                list(langs),
                latent=config.pivot,
                limit=config.lens_limit,
                batch_size=config.lens_batch_size,
                store=store,
                progress=progress,
            )
            lens.append(found.assign(**tag))
            for lang in langs:
                setup = InterferenceSetup(
                    config.pivot,
                    lang,
                    split="held_out",
                    k=config.interference_pairs,
                    batch_size=config.interference_batch_size,
                    params=config.interference_params,
                    seed=config.seed,
                )
                found = measure(backend, setup, config.data, store=store, progress=progress)
                interference.append(found.assign(**tag))
        del backend
    return Measurements(
        pd.concat(answers, ignore_index=True),
        pd.concat(lens, ignore_index=True) if lens else None,
        pd.concat(interference, ignore_index=True) if interference else None,
        n_layers,
    )


# ---- answers: language, chrF, win/loss ------------------------------------------------------
def score_answers(answers: pd.DataFrame, pivot: str = PIVOT) -> pd.DataFrame:
    """One row per (model, lang, id, variant): ``text`` (the judged answer), ``how`` (how the
    pivot part was found, PLUG only), ``shown`` (the answer a user sees) and ``chrf``
    (sentence chrF vs the reference)."""
    metric = CHRF()
    rows = []
    for row in answers.itertuples(index=False):
        variants = [("full", row.completion, "", row.recipe != "plug")]
        if row.recipe == "plug":
            stripped = strip_pivot(str(row.completion), str(row.lang), pivot)
            variants.append(("stripped", stripped.text, stripped.how, True))
        for variant, text, how, shown in variants:
            rows.append(
                {
                    "model": row.model,
                    "recipe": row.recipe,
                    "lang": row.lang,
                    "id": row.id,
                    "variant": variant,
                    "text": text,
                    "how": how,
                    "shown": shown,
                    "reference": row.reference,
                    "chrf": metric.sentence_score(str(text), [str(row.reference)]).score,
                }
            )
    return pd.DataFrame(rows)


def _interval(point: float, boot: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    return (point, point, point) if len(boot) == 0 else (point, *percentile_interval(boot, level))


def comparison_table(scored: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (model, recipe, variant) and language, plus ``lang = all`` (mean over languages):
    LPR, WPR (NaN for Latin-script targets) and corpus chrF, each with a 95% interval."""
    rows = []
    for (model, recipe, variant), group in scored.groupby(["model", "recipe", "variant"], sort=False):
        outputs = group.rename(columns={"text": "completion", "lang": "language"}).assign(
            task="recipe-eval", source="held_out", model=str(model)
        )
        metrics = compute_all_metrics(judge_completions(outputs), n_boot=n_boot, seed=seed)
        metrics = metrics[metrics["source"] == ALL].set_index("language")
        # ids sorted and one seed: every language resamples the same ids (the sets are parallel)
        replicates = {
            lang: corpus_chrf(list(g["text"]), list(g["reference"]), n_boot=n_boot, seed=seed)
            for lang, g in group.sort_values("id", kind="stable").groupby("lang", sort=False)
        }
        # lang = all: the mean over languages, its replicates the means of the per-language ones
        replicates[ALL] = (
            float(np.mean([p for p, _ in replicates.values()])),
            np.mean([b for _, b in replicates.values()], axis=0),
        )
        for lang, (point, boot) in replicates.items():
            chrf, low, high = _interval(point, boot)
            m = cast(pd.Series, metrics.loc[lang])  # one row per language
            rows.append(
                {
                    "model": model,
                    "recipe": recipe,
                    "lang": lang,
                    "variant": variant,
                    "n": int(m["n"]),
                    "n_scored": int(m["n_scored"]),
                    **{
                        k: float(m.get(k, np.nan)) for k in ("lpr", "lpr_low", "lpr_high", "wpr", "wpr_low", "wpr_high")
                    },
                    "chrf": chrf,
                    "chrf_low": low,
                    "chrf_high": high,
                    "shown": bool(group["shown"].iloc[0]),
                }
            )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def strip_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """How the pivot part of each PLUG answer was found (``tagged``, ``lid``, ``untagged``,
    ``not_found``; see :class:`~analyses.interventions.recipes.StrippedAnswer`), per model and language."""
    stripped = scored[scored["variant"] == "stripped"]
    return stripped.groupby(["model", "lang", "how"]).size().rename("n").reset_index()


def win_loss(
    scored: pd.DataFrame, *, tie_margin: float = 1.0, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Every ordered pair of models (A, B) per language and over all languages (``lang = all``):
    ``n``, ``win``, ``loss``, ``tie`` (% of instructions), ``delta = win − loss`` and its
    bootstrap interval over instructions, judged by :data:`JUDGE` on the shown answers."""
    shown = scored[scored["shown"]]
    grid = shown.pivot_table(index=["lang", "id"], columns="model", values="chrf", aggfunc="first")
    recipes = shown.drop_duplicates("model").set_index("model")["recipe"]
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in itertools.permutations(grid.columns, 2):
        for lang, diff in [*((lang, g[a] - g[b]) for lang, g in grid.groupby(level="lang")), (ALL, grid[a] - grid[b])]:
            d = diff.dropna().to_numpy()
            score = np.sign(d) * (np.abs(d) > tie_margin)
            draws = score[bootstrap_indices(len(score), n_boot, rng)] if n_boot and len(score) > 1 else score[None]
            low, high = percentile_interval(100 * draws.mean(1), level)
            rows.append(
                {
                    "model_a": a,
                    "recipe_a": recipes[a],
                    "model_b": b,
                    "recipe_b": recipes[b],
                    "lang": lang,
                    "n": len(d),
                    "win": 100 * float((score > 0).mean()),
                    "loss": 100 * float((score < 0).mean()),
                    "tie": 100 * float((score == 0).mean()),
                    "delta": 100 * float(score.mean()),
                    "delta_low": low,
                    "delta_high": high,
                    "judge": JUDGE,
                    "tie_margin": tie_margin,
                }
            )
    return pd.DataFrame(rows)


def table1(pairs: pd.DataFrame, reference: str = "plug") -> pd.DataFrame:
    """The paper's Table 1 layout: one row per ``<reference> vs. <baseline>``, columns
    ``(lang, Win%)``, ``(lang, Loss%)``, ``(lang, Δ%)``. ``reference`` is a model label or a recipe."""
    chosen = pairs[(pairs["model_a"] == reference) | (pairs["recipe_a"] == reference)]
    if chosen.empty:
        raise ValueError(
            f"no model or recipe {reference!r} among {sorted(set(pairs['model_a']))}; pick another reference"
        )
    chosen = chosen.assign(comparison=chosen["model_a"] + " vs. " + chosen["model_b"])
    langs = [lang for lang in dict.fromkeys(chosen["lang"]) if lang != ALL] + [ALL]
    wide = chosen.pivot_table(index="comparison", columns="lang", values=["win", "loss", "delta"], sort=False)
    columns = [(lang, label) for lang in langs for label in ("Win%", "Loss%", "Δ%")]
    out = pd.DataFrame(index=wide.index, columns=pd.MultiIndex.from_tuples(columns))
    for lang in langs:
        for value, label in (("win", "Win%"), ("loss", "Loss%"), ("delta", "Δ%")):
            out[(lang, label)] = wide[(value, lang)].round(1)
    return out


# ---- everything together --------------------------------------------------------------------
@dataclass
class RecipeEvaluation:
    scored: pd.DataFrame
    comparison: pd.DataFrame
    pairs: pd.DataFrame
    table1: pd.DataFrame | None
    strip_counts: pd.DataFrame
    inside: ModelInternals | None = None
    logs: pd.DataFrame | None = None
    reference: str | None = None  # the model label or recipe of Table 1's rows, when the pairs have it
    figures: dict[str, go.Figure] = field(default_factory=dict)


def training_logs(entries: Sequence[ModelEntry]) -> pd.DataFrame | None:
    """The driver's ``training_log.csv`` of each fine-tuned model, with a ``run`` column."""
    logs = [
        pd.read_csv(Path(e.path) / "training_log.csv").assign(run=e.label)
        for e in entries
        if (Path(e.path) / "training_log.csv").is_file()
    ]
    return pd.concat(logs, ignore_index=True) if logs else None


def analyse(
    measurements: Measurements,
    entries: Sequence[ModelEntry],
    *,
    reference: str = "plug",
    config: EvalConfig = EvalConfig(),
) -> RecipeEvaluation:
    """Every table and figure of a recipe comparison (compute -> statistic -> figure)."""
    scored = score_answers(measurements.answers, config.pivot)
    comparison = comparison_table(scored, n_boot=config.n_boot, seed=config.seed)
    pairs = win_loss(scored, tie_margin=config.tie_margin, n_boot=config.n_boot, seed=config.seed)
    has_reference = reference in set(pairs["model_a"]) | set(pairs["recipe_a"])
    result = RecipeEvaluation(
        scored,
        comparison,
        pairs,
        table1(pairs, reference) if has_reference else None,
        strip_counts(scored),
        logs=training_logs(entries),
        reference=reference if has_reference else None,
    )
    if measurements.lens is not None and measurements.interference is not None:
        result.inside = inside_tables(
            measurements.lens,
            measurements.interference,
            n_layers=measurements.n_layers,
            n_boot=config.n_boot,
            seed=config.seed,
        )
    result.figures = recipe_figures(
        comparison, pairs, reference=result.reference, logs=result.logs, inside=result.inside
    )
    return result


def write_outputs(result: RecipeEvaluation, out: str | Path, *, png: bool = True) -> list[Path]:
    """Tables (CSV) and Table 1 (CSV and Markdown, judge named) under ``out``, then the figures
    drawn from them (:func:`write_figures`)."""
    out = Path(out)
    written = []

    def csv(table: pd.DataFrame, name: str) -> None:
        path = out / f"{name}.csv"
        write_text_atomic(table.to_csv(index=False), path)
        written.append(path)

    csv(result.comparison, "comparison")
    csv(result.scored, "answers")
    csv(result.pairs, "win_loss_pairs")
    csv(result.strip_counts, "plug_strip_counts")
    if result.table1 is not None:
        path = out / "table1.csv"
        write_text_atomic(result.table1.to_csv(), path)
        header = f"Judge: {JUDGE}; tie when |Δ chrF| <= {result.pairs['tie_margin'].iloc[0]:g}.\n\n"
        write_text_atomic(header + result.table1.to_markdown() + "\n", out / "table1.md")
        written += [path, out / "table1.md"]
    if result.inside is not None:
        csv(result.inside.curves, "lens_curves")
        csv(result.inside.pivots, "pivot_summary")
        csv(result.inside.lambdas, "lambda")
        csv(result.inside.interference, "interference")
    if result.logs is not None:
        csv(result.logs, "training_logs")
    return written + write_figures(out, reference=result.reference, png=png)


def write_figures(out: str | Path, *, reference: str | None = "plug", png: bool = True) -> list[Path]:
    """The figures of the recipe comparison in ``out``, drawn from the tables :func:`write_outputs`
    wrote there: scores, win/loss against ``reference`` (None: no win/loss figure), training loss
    and, when measured, the lens, interference and lambdas inside each model. HTML links plotly.js
    from the CDN; a PNG beside it when ``png``."""
    out = Path(out)
    inside = [out / f"{name}.csv" for name in ("lens_curves", "pivot_summary", "lambda", "interference")]
    figures = recipe_figures(
        pd.read_csv(out / "comparison.csv"),
        pd.read_csv(out / "win_loss_pairs.csv"),
        reference=reference,
        logs=pd.read_csv(out / "training_logs.csv") if (out / "training_logs.csv").is_file() else None,
        inside=ModelInternals(*map(pd.read_csv, inside)) if all(path.is_file() for path in inside) else None,
    )
    return [path for name, fig in figures.items() for path in save_figure(fig, out / name, static=png)]
