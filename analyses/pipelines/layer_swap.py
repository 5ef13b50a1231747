"""The layer-swapping replay on one CPU machine (Bandarkar et al., ICLR 2025, Table 1; spec
section 6), and a suggestion of which layers to swap from the toolkit's own evidence.

Steps (each resumable: finished experts, merges' evaluations and lens runs are reused):

1. Experts, fine-tuned from one base with the fine-tuning driver
   (:func:`analyses.interventions.finetune.finetune`, LoRA merged at the end): a *task expert* on
   English arithmetic word problems (``data/arithmetic/train.csv``) and one *language expert* per
   target language on that language's instructions (``data/instructions.csv``, training ids
   only). Seeds and settings are recorded in each expert's ``finetune.json``.
2. Weight-change maps of every expert against the base (:mod:`analyses.stats.weight_change`).
3. Evidence for a swap: the base model's logit lens on the target language (where the target
   language overtakes English, :func:`analyses.stats.latent.pivot_summary`) and where the language
   expert's change exceeds the task expert's (:func:`suggest_swap`); beside it, the layers of the
   language's monolingual region where ``pivotlens importance`` measured one
   (:func:`region_enrichment`).
4. Accuracy (greedy, :func:`probes.arithmetic.run_arithmetic`) in each target language of the
   base, the language expert, the task expert, their soup, the swap with the paper's default
   scaled to the depth (:func:`analyses.interventions.layer_swap.depth_scaled`), every swap of a
   small grid, and the suggested swap; 95% bootstrap intervals over problems, and paired
   differences to the task expert (:func:`paired_differences`).

Small tables and figures go to ``--out``; evaluations and maps to the results store
(``~/.cache/pivotlens/results``), experts and merges under ``~/.cache/pivotlens/layer_swap``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.interventions.finetune import FinetuneConfig, examples_from_instructions, finetune
from analyses.interventions.layer_swap import SwapConfig, depth_scaled, soup, swap
from analyses.stats.intervals import bootstrap_mean_interval
from analyses.stats.latent import pivot_summary
from analyses.stats.weight_change import change_profile, weight_change
from probes.arithmetic import run_arithmetic
from probes.backend import load
from probes.backend.models import cache_dir, resolve_model, weights_fingerprint
from probes.backend.store import ResultsStore, provenance, write_parquet_atomic, write_text_atomic
from probes.inputs.arithmetic import EVAL, TRAIN, load_problems
from probes.inputs.instruction_data import load_instructions, split_held_out

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReplaySettings:
    """Sizes of the replay. The defaults fit a shared 2-core CPU in a few hours."""

    base: str = "gemma-3-270m"
    langs: tuple[str, ...] = ("sw", "ja", "zh")
    task_steps: int = 200
    lang_steps: int = 100
    task_lr: float = 1e-3
    lang_lr: float = 5e-4
    lora_r: int = 16
    batch_size: int = 4
    max_length: int = 128
    seed: int = 0
    n_eval: int = 80
    english: bool = True  # also evaluate the base and the task expert in English (the training language)
    eval_batch: int = 40
    max_new_tokens: int = 32
    grid_bottom: tuple[int, ...] = (1, 2, 3)
    grid_top: tuple[int, ...] = (0, 1, 2)
    grid_transition: tuple[int, ...] = (1,)
    lens_limit: int = 40
    region_sizes: Path | None = None  # default: results/importance/<base>/region_sizes.csv
    experts_dir: Path = field(default_factory=lambda: cache_dir() / "layer_swap" / "experts")
    work_dir: Path = field(default_factory=lambda: cache_dir() / "layer_swap" / "merges")


def _lora(settings: ReplaySettings, steps: int, lr: float) -> FinetuneConfig:
    return FinetuneConfig(
        method="lora",
        max_steps=steps,
        batch_size=settings.batch_size,
        learning_rate=lr,
        lora_r=settings.lora_r,
        lora_alpha=2 * settings.lora_r,
        seed=settings.seed,
        max_length=settings.max_length,
        logging_steps=5,
        save_steps=25,
    )


def train_experts(
    settings: ReplaySettings, which: Sequence[str] | None = None, *, progress: bool = True
) -> dict[str, Path]:
    """``{"task": folder, "<lang>": folder, ...}``: the task expert and one language expert per
    language (``which`` picks some of these keys); each is skipped when its folder is finished
    and resumed when interrupted."""
    root = settings.experts_dir / settings.base
    keys = list(which) if which is not None else ["task", *settings.langs]
    experts = {}
    for key in keys:
        if key == "task":
            train = load_problems(TRAIN, langs=["en"])
            examples = list(zip(train["question"], train["response"]))
            config, folder = _lora(settings, settings.task_steps, settings.task_lr), root / "task_arithmetic_en"
        else:
            instructions = load_instructions(langs=[key])
            examples = examples_from_instructions(split_held_out(instructions)[0], key)
            config, folder = _lora(settings, settings.lang_steps, settings.lang_lr), root / f"lang_{key}"
        experts[key] = finetune(settings.base, examples, folder, config, progress=progress).model_dir
    return experts


def swap_grid(settings: ReplaySettings, n_layers: int) -> list[SwapConfig]:
    """Every ``(b, u, t)`` of the grid with ``t_b = t_u = t`` that fits the depth, plus the
    depth-scaled default."""
    configs = [
        SwapConfig(b, u, t, t)
        for b in settings.grid_bottom
        for u in settings.grid_top
        for t in settings.grid_transition
        if b + u + 2 * t <= n_layers
    ]
    default = depth_scaled(n_layers)
    return configs if default in configs else [default, *configs]


def suggest_swap(
    n_layers: int,
    overtake_layer: int,
    lang_profile: pd.DataFrame,
    task_profile: pd.DataFrame,
    *,
    transition: int = 1,
    min_task_layers: int = 2,
) -> tuple[SwapConfig, dict]:
    """A swap from the toolkit's evidence (beyond the paper):

    * ``bottom`` = the leading run of layers where the language expert's change (per-layer
      profile divided by its mean over layers) exceeds the task expert's;
    * ``top`` = ``L − overtake_layer``: the layers from where the target language overtakes
      English in the base model's logit lens (or, if it never does, the trailing run of layers
      where the language expert's change exceeds the task expert's);
    * transitions of ``transition`` layers, and at least ``min_task_layers`` task layers kept
      (the larger of bottom and top is cut first)."""
    lang = lang_profile.set_index("layer")["value"].reindex(range(n_layers))
    task = task_profile.set_index("layer")["value"].reindex(range(n_layers))
    excess = (lang / lang.mean() - task / task.mean()).to_numpy()
    leading = int(np.argmin(excess > 0)) if (excess <= 0).any() else n_layers
    trailing = int(np.argmin(excess[::-1] > 0)) if (excess <= 0).any() else n_layers
    top_from = "logit lens" if overtake_layer >= 0 else "weight change"
    bottom, top = leading, (n_layers - overtake_layer if overtake_layer >= 0 else trailing)
    while bottom + top + 2 * transition > n_layers - min_task_layers and (bottom or top):
        if bottom >= top:
            bottom -= 1
        else:
            top -= 1
    config = SwapConfig(bottom, top, transition, transition)
    evidence = {
        "overtake_layer": overtake_layer,
        "leading_excess_layers": leading,
        "trailing_excess_layers": trailing,
        "top_from": top_from,
        "excess": [float(x) for x in excess],
    }
    return config, evidence


def region_enrichment(region_sizes: str | Path, lang: str) -> pd.DataFrame | None:
    """``layer, enrichment``: the share of a block's parameters in the language's monolingual
    region (Zhang et al. 2024, ``mono-top-<lang>`` of ``pivotlens importance``'s
    ``region_sizes.csv``) over the share in the whole model (> 1: the region concentrates there);
    ``None`` if the table or the language's region is missing."""
    path = Path(region_sizes)
    if not path.is_file():
        return None
    sizes = pd.read_csv(path)
    rows = sizes[sizes["region"] == f"mono-top-{lang}"].assign(
        layer=lambda t: t["param"].str.extract(r"layers\.(\d+)\.")[0]
    )
    if rows.empty:
        return None
    overall = rows["selected"].sum() / rows["numel"].sum()
    per_layer = rows.dropna(subset=["layer"]).astype({"layer": int}).groupby("layer")[["selected", "numel"]].sum()
    return (per_layer["selected"] / per_layer["numel"] / overall).rename("enrichment").reset_index()


def region_evidence(enrichment: pd.DataFrame | None) -> dict:
    """The monolingual region's layers as evidence beside the suggestion: the enriched layers and
    the leading and trailing runs of them (-1 where no region was measured)."""
    if enrichment is None:
        return {"region_layers": "", "region_leading_layers": -1, "region_trailing_layers": -1}
    enriched = (enrichment.sort_values("layer")["enrichment"] > 1).to_numpy()
    leading = int(np.argmin(enriched)) if not enriched.all() else len(enriched)
    trailing = int(np.argmin(enriched[::-1])) if not enriched.all() else len(enriched)
    layers = enrichment.sort_values("layer")["layer"][enriched].tolist()
    return {
        "region_layers": " ".join(map(str, layers)),
        "region_leading_layers": leading,
        "region_trailing_layers": trailing,
    }


def accuracy_table(
    results: pd.DataFrame, by: Sequence[str] = ("setting", "lang"), *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """``*by, accuracy, ci_low, ci_high, n`` with 95% percentile-bootstrap intervals over problems."""
    rows = []
    for key, group in results.groupby(list(by), sort=False):
        correct = group["correct"].to_numpy(dtype=float)
        low, high = bootstrap_mean_interval(correct, n_boot=n_boot, seed=seed) if len(correct) > 1 else (np.nan, np.nan)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                "accuracy": correct.mean(),
                "ci_low": low,
                "ci_high": high,
                "n": len(correct),
            }
        )
    return pd.DataFrame(rows)


def paired_differences(
    results: pd.DataFrame, *, reference: str = "task expert", n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """``lang, setting, config, difference, ci_low, ci_high, n``: accuracy minus the
    ``reference`` setting's on the same problems, with a paired 95% percentile bootstrap (the
    problems are resampled together, so the shared difficulty cancels)."""
    rows = results.assign(config=results.get("config", pd.Series(index=results.index, dtype=object)).fillna(""))
    out = []
    for lang, group in rows.groupby("lang", sort=False):
        base = group[group["setting"] == reference].set_index("id")["correct"].astype(float)
        if base.empty:
            continue
        for (setting, config), other in group[group["setting"] != reference].groupby(["setting", "config"], sort=False):
            diff = (other.set_index("id")["correct"].astype(float) - base).dropna().to_numpy()
            low, high = bootstrap_mean_interval(diff, n_boot=n_boot, seed=seed) if len(diff) > 1 else (np.nan, np.nan)
            out.append(
                {
                    "lang": lang,
                    "setting": setting,
                    "config": config,
                    "difference": diff.mean(),
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(diff),
                }
            )
    return pd.DataFrame(out, columns=["lang", "setting", "config", "difference", "ci_low", "ci_high", "n"])


def config_label(config: SwapConfig) -> str:
    return f"b={config.bottom} u={config.top} tb={config.transition_bottom} tu={config.transition_top}"


class Evaluator:
    """Accuracy runs in the results store, keyed by what determines the model (its weights'
    fingerprint, or for a merge its recipe and the experts' fingerprints), so a finished
    evaluation is reused without rebuilding the merge."""

    def __init__(self, settings: ReplaySettings, store: ResultsStore, *, progress: bool = True) -> None:
        self.settings, self.store, self.progress = settings, store, progress
        self.problems = load_problems(EVAL, limit=settings.n_eval)

    def _run(self, label: str, weights_hash: str, lang: str):
        params = {"lang": lang, "n_eval": self.settings.n_eval, "max_new_tokens": self.settings.max_new_tokens}
        return self.store.run(provenance("arithmetic", params, {"model": label, "weights_hash": weights_hash}, [EVAL]))

    def model(self, spec: str | Path, langs: Sequence[str]) -> pd.DataFrame:
        """Accuracy rows of an existing model in ``langs``."""
        name, source = resolve_model(spec)
        return self._evaluate(lambda: source, name, weights_fingerprint(source), langs, cleanup=False)

    def merged(self, label: str, recipe: dict, build, langs: Sequence[str]) -> pd.DataFrame:
        """Accuracy rows of a merge made by ``build()`` (called only if some language is missing)."""
        digest = "merge-" + hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return self._evaluate(build, label, digest, langs, cleanup=True)

    def _evaluate(self, build, label: str, weights_hash: str, langs: Sequence[str], *, cleanup: bool) -> pd.DataFrame:
        runs = {lang: self._run(label, weights_hash, lang) for lang in langs}
        tables = {lang: run.load() for lang, run in runs.items() if run.finished}
        todo = [lang for lang in langs if lang not in tables]
        if todo:
            folder = build()
            backend = load(folder, backend="nnsight")
            backend.model_name = label
            for lang in todo:
                problems = self.problems[self.problems["lang"] == lang]
                tables[lang] = run_arithmetic(
                    backend,
                    problems,
                    batch_size=self.settings.eval_batch,
                    max_new_tokens=self.settings.max_new_tokens,
                    run=runs[lang],
                    progress=self.progress,
                )
            del backend
            if cleanup:
                shutil.rmtree(folder, ignore_errors=True)
        return pd.concat([tables[lang] for lang in langs], ignore_index=True)


def lens_overtake(settings: ReplaySettings, store: ResultsStore, *, progress: bool = True) -> pd.DataFrame:
    """The base model's pivot summary (latent peak, overtake layer) for the target languages."""
    from analyses.pipelines.lens import run_languages

    backend = load(settings.base, backend="nnsight")
    table = run_languages(backend, list(settings.langs), store=store, limit=settings.lens_limit, progress=progress)
    return pivot_summary(table)


@dataclass
class ReplayResults:
    results: pd.DataFrame  # one row per (setting, lang, problem)
    accuracy: pd.DataFrame
    table1: pd.DataFrame
    grid: pd.DataFrame
    maps: dict[str, pd.DataFrame]
    suggestions: pd.DataFrame
    experts: dict[str, Path]


def expert_maps(
    settings: ReplaySettings, experts: dict[str, Path], store: ResultsStore, *, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """Weight-change map of every expert against the base, kept in the store (keyed by both
    checkpoints' weights) so that a resumed replay does not read the checkpoints again."""
    base_hash = weights_fingerprint(resolve_model(settings.base)[1])
    maps = {}
    for key, folder in experts.items():
        run = store.run(
            provenance(
                "weight_change",
                {"base": settings.base, "base_hash": base_hash},
                {"model": f"expert_{key}", "weights_hash": weights_fingerprint(str(folder))},
            )
        )
        if not run.finished:
            run.append(weight_change(settings.base, folder, progress=progress))
        maps[key] = run.load() if run.finished else run.finish()
    return maps


def replay(
    settings: ReplaySettings, out: str | Path, *, store: ResultsStore | None = None, progress: bool = True
) -> ReplayResults:
    """Run (or resume) the whole replay and write its tables under ``out`` (small tables only;
    evaluations and maps go to the results store, by default under ``~/.cache/pivotlens``).
    Every language gets Table 1's settings and its suggested swap first, then the rest of the
    grid, so that an interrupted replay has its main table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = store or ResultsStore()
    experts = train_experts(settings, progress=progress)
    for key, folder in experts.items():  # keep the training records with the results
        for file in ("finetune.json", "training_log.csv"):
            shutil.copy(folder / file, out / f"expert_{key}_{file}")
    maps = expert_maps(settings, experts, store, progress=progress)
    pd.concat([m.assign(expert=k) for k, m in maps.items()], ignore_index=True).to_csv(
        out / "weight_change.csv", index=False
    )
    n_layers = int(maps["task"]["layer"].max()) + 1
    pivots = lens_overtake(settings, store, progress=progress)
    pivots.to_csv(out / "pivot_summary.csv", index=False)
    task_profile = change_profile(maps["task"])
    evaluator = Evaluator(settings, store, progress=progress)
    langs = list(settings.langs)
    both = ["en", *langs] if settings.english else langs
    tables = [
        evaluator.model(settings.base, both).assign(setting="base"),
        evaluator.model(experts["task"], both).assign(setting="task expert"),
    ]
    grid, default, suggestions, plans = swap_grid(settings, n_layers), depth_scaled(n_layers), [], {}
    fingerprints = {k: weights_fingerprint(str(v)) for k, v in experts.items()}

    def evaluate_swap(lang: str, config: SwapConfig, suggested: SwapConfig) -> pd.DataFrame:
        pair = {"task": fingerprints["task"], "lang": fingerprints[lang]}
        target = settings.work_dir / f"{lang}-merge"
        label = f"swap-{lang}-{config_label(config).replace(' ', '_')}"
        rows = evaluator.merged(
            label,
            {"swap": asdict(config), **pair},
            lambda: swap(experts["task"], experts[lang], target, config, progress=False),
            [lang],
        )
        return rows.assign(
            setting="swap",
            config=config_label(config),
            default=config == default,
            suggested=config == suggested,
            in_grid=config in grid,
        )

    for lang in langs:  # Table 1's settings and the suggestion
        tables.append(evaluator.model(experts[lang], [lang]).assign(setting="language expert"))
        pair = {"task": fingerprints["task"], "lang": fingerprints[lang]}
        target = settings.work_dir / f"{lang}-merge"
        tables.append(
            evaluator.merged(
                f"soup-{lang}",
                {"soup": pair},
                lambda lang=lang, target=target: soup([experts["task"], experts[lang]], target, progress=False),
                [lang],
            ).assign(setting="soup")
        )
        overtake = int(pivots.loc[pivots["lang"] == lang, "overtake_layer"].iloc[0])
        suggested, evidence = suggest_swap(n_layers, overtake, change_profile(maps[lang]), task_profile)
        sizes = settings.region_sizes or REPO / "results" / "importance" / settings.base / "region_sizes.csv"
        regions = region_evidence(region_enrichment(sizes, lang))
        suggestions.append(
            {"lang": lang, "config": config_label(suggested), **asdict(suggested), **evidence, **regions}
        )
        plans[lang] = suggested
        tables += [evaluate_swap(lang, config, suggested) for config in dict.fromkeys([default, suggested])]
    for config in grid:  # the rest of the grid, one configuration in every language at a time
        tables += [evaluate_swap(lang, config, plans[lang]) for lang in langs if config not in (default, plans[lang])]
    results = pd.concat(tables, ignore_index=True)
    write_parquet_atomic(results, out / "accuracy_items.parquet", provenance("swap_replay", asdict(settings)))
    summary = summarise_swaps(results, grid_labels=[config_label(c) for c in grid], default_label=config_label(default))
    suggestions_table = pd.DataFrame(suggestions)
    suggestions_table = suggestions_table.merge(summary["suggestion_rank"], on="lang", how="left")
    for name, table in {
        "accuracy": summary["accuracy"],
        "table1": summary["table1"],
        "grid": summary["grid"],
        "suggestions": suggestions_table,
        "paired_vs_task_expert": paired_differences(results),
    }.items():
        write_text_atomic(table.to_csv(index=False), out / f"{name}.csv")
    write_text_atomic(json.dumps(asdict(settings), indent=2, default=str), out / "settings.json")
    return ReplayResults(
        results, summary["accuracy"], summary["table1"], summary["grid"], maps, suggestions_table, experts
    )


def summarise_swaps(
    results: pd.DataFrame, *, grid_labels: Sequence[str], default_label: str
) -> dict[str, pd.DataFrame]:
    """Accuracy per (setting, config, lang); the grid ranked per language; Table 1 (base, language
    expert, task expert, soup, default swap, best swap of the grid); the suggestion's rank."""
    rows = results.assign(config=results.get("config", pd.Series(index=results.index, dtype=object)).fillna(""))
    accuracy = accuracy_table(rows, by=("setting", "config", "lang"))
    swaps = accuracy[accuracy["setting"] == "swap"].copy()
    swaps["in_grid"] = swaps["config"].isin(grid_labels)
    grid = swaps[swaps["in_grid"]].copy()
    grid["rank"] = grid.groupby("lang")["accuracy"].rank(ascending=False, method="min").astype(int)
    grid["n_configs"] = grid.groupby("lang")["config"].transform("count")
    table1 = []

    def pick(lang: str, setting: str, config: str = "") -> dict:
        row = accuracy[(accuracy["setting"] == setting) & (accuracy["config"] == config) & (accuracy["lang"] == lang)]
        return row.iloc[0].to_dict() if len(row) else {}

    for lang in grid["lang"].unique():
        best = grid[grid["lang"] == lang].sort_values(["accuracy", "config"], ascending=[False, True]).iloc[0]
        entries = {
            "base": pick(lang, "base"),
            "language expert": pick(lang, "language expert"),
            "task expert": pick(lang, "task expert"),
            "soup": pick(lang, "soup"),
            "swap (default)": pick(lang, "swap", default_label),
            "swap (best of grid)": best.to_dict(),
        }
        for setting, entry in entries.items():
            if entry:
                table1.append(
                    {
                        "lang": lang,
                        "setting": setting,
                        "config": entry.get("config", ""),
                        "accuracy": entry["accuracy"],
                        "ci_low": entry["ci_low"],
                        "ci_high": entry["ci_high"],
                        "n": entry["n"],
                    }
                )
    suggested = results[results.get("suggested", pd.Series(False, index=results.index)).fillna(False).astype(bool)]
    ranks = []
    for lang, group in suggested.groupby("lang"):
        label = group["config"].iloc[0]
        acc = float(group["correct"].mean())
        lang_grid = grid[grid["lang"] == lang]
        ranks.append(
            {
                "lang": lang,
                "suggestion_accuracy": acc,
                "suggestion_rank": int((lang_grid["accuracy"] > acc).sum()) + 1,
                "grid_size": len(lang_grid),
                "suggestion_in_grid": label in set(lang_grid["config"]),
            }
        )
    return {
        "accuracy": accuracy,
        "grid": grid.sort_values(["lang", "rank"]),
        "table1": pd.DataFrame(table1),
        "suggestion_rank": pd.DataFrame(
            ranks, columns=["lang", "suggestion_accuracy", "suggestion_rank", "grid_size", "suggestion_in_grid"]
        ),
    }


def write_figures(out: str | Path, *, metrics: Sequence[str] = ("rel_frobenius", "top_fraction")) -> list[Path]:
    """The replay's figures under ``out/figures`` from its tables: the experts' weight-change maps
    (task expert vs each language expert, with their difference) and per-layer profiles under
    each of ``metrics``, Table 1, the grid, and the zones of the default and suggested swaps.
    HTML links plotly.js from its CDN (small enough to commit)."""
    from analyses.figures import save_figure
    from analyses.figures.layer_swap import grid_figure, table1_figure, zones_figure
    from analyses.figures.weight_change import profile_figure, weight_change_figure

    out = Path(out)
    figures = out / "figures"
    maps = pd.read_csv(out / "weight_change.csv")
    experts = {key: table for key, table in maps.groupby("expert", sort=False)}
    n_layers = int(maps["layer"].max()) + 1
    suggestions = pd.read_csv(out / "suggestions.csv")
    written = []
    for metric in metrics:
        for lang in [k for k in experts if k != "task"]:
            pair = {"task expert": experts["task"], f"{lang} expert": experts[lang]}
            fig = weight_change_figure(pair, metric, difference=(f"{lang} expert", "task expert"))
            written += save_figure(fig, figures / f"weight_change_{lang}_{metric}")
        profiles = {
            ("task expert" if k == "task" else f"{k} expert"): change_profile(t, metric) for k, t in experts.items()
        }
        written += save_figure(profile_figure(profiles, metric=metric), figures / f"weight_change_profiles_{metric}")
    written += save_figure(table1_figure(pd.read_csv(out / "table1.csv", keep_default_na=False)), figures / "table1")
    written += save_figure(grid_figure(pd.read_csv(out / "grid.csv"), suggestions=suggestions), figures / "grid")
    configs = {"default": depth_scaled(n_layers)}
    for row in suggestions.to_dict("records"):
        configs[f"suggested {row['lang']}"] = SwapConfig(
            int(row["bottom"]), int(row["top"]), int(row["transition_bottom"]), int(row["transition_top"])
        )
    written += save_figure(zones_figure(configs, n_layers), figures / "zones")
    return written
