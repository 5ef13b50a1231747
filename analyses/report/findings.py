"""Findings of the results READMEs, written from the committed tables.

A README states a finding between markers::

    <!-- findings:lens:gemma-3-270m -->
    ...generated text...
    <!-- /findings -->

``pivotlens findings`` rewrites every such block of the READMEs under ``results/`` from the
tables beside it, and the tables derived from other tables (:func:`derived_tables`, e.g. the LCB comparison
with the paper); ``--check`` only lists the blocks and derived tables that disagree (exit code 1);
the test suite checks that none does. Prose outside the markers states no numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analyses.stats.confusion_metrics import TASK_ORDER, compare_with_paper
from analyses.stats.precision import dtype_agreement
from analyses.stats.prom_lambda import verdict

RESULTS = Path(__file__).resolve().parents[2] / "results"
BLOCK = re.compile(
    r"(?P<open><!-- findings:(?P<key>[\w.:-]+) -->\n)(?P<body>.*?)(?P<close><!-- /findings -->)", re.DOTALL
)


def _langs(values) -> str:
    return ", ".join(sorted(values)) or "none"


def _protocol(lambdas: pd.DataFrame) -> str:
    if "task" not in lambdas:
        return "translation prompts (tables written before the task and shot columns existed)"
    parts = sorted({f"{r.task}, {r.shots}-shot" for r in lambdas.itertuples()})
    sources = sorted(set(lambdas["src_lang"]))
    source = "each target language itself" if set(lambdas["task"]) == {"cloze"} else ", ".join(sources)
    return f"{'; '.join(parts)} prompts, source {source}"


def _decisions(lambdas: pd.DataFrame) -> dict[str, list[str]]:
    """Languages by decision: lambda0 decided, 0 decided, borderline, undecided (empty lens)."""
    groups: dict[str, list[str]] = {}
    for _, row in lambdas.iterrows():
        groups.setdefault(verdict(row).split(" (nearest")[0] if pd.isna(row["lambda"]) else verdict(row), []).append(
            row["lang"]
        )
    return groups


def lambda_sentence(lambdas: pd.DataFrame) -> str:
    """``At layer 13 (...): lambda = 0.1 for ar, bn; lambda = 0 for es; ...``."""
    layers = sorted(set(lambdas["layer"]))
    groups = "; ".join(f"{key}: {_langs(langs)}" for key, langs in sorted(_decisions(lambdas).items()))
    larger = lambdas[["mean_p_latent", "mean_p_target"]].max(axis=1)
    low, high = lambdas.iloc[larger.argmin()], lambdas.iloc[larger.argmax()]
    return (
        f"PROM's rule at layer n = {', '.join(map(str, layers))} on {_protocol(lambdas)}: {groups}. "
        f"There, the larger of mean P(en) and mean P(target) ranges from {larger.min():.2g} ({low['lang']}) "
        f"to {larger.max():.2g} ({high['lang']})."
    )


def lens_findings(folder: Path) -> str:
    """Peak and overtake layers, final target probabilities and PROM's decisions of one sweep."""
    lambdas = pd.read_csv(folder / "lambda.csv")
    summary = pd.read_csv(folder / "pivot_summary.csv")
    peaks = summary["latent_peak_layer"].value_counts()
    mode = int(peaks.index[0])
    others = summary[summary["latent_peak_layer"] != mode]
    overtakes = summary[summary["overtake_layer"] >= 0]
    never = summary[summary["overtake_layer"] < 0]["lang"]
    top = summary.iloc[summary["final_p_target"].argmax()]
    lines = [
        f"- {len(summary)} target languages; {int(lambdas['n'].sum())} prompts at layer n.",
        f"- P(en) peaks at layer {mode} for {int(peaks.iloc[0])} of {len(summary)} languages"
        + (
            "; elsewhere: "
            + ", ".join(f"{r.lang} {r.latent_peak_layer}" for r in others.sort_values("lang").itertuples())
            if len(others)
            else ""
        )
        + ".",
        (
            f"- The target overtakes English after the peak for {len(overtakes)} languages, at layers "
            f"{overtakes['overtake_layer'].min()}-{overtakes['overtake_layer'].max()}; never for: {_langs(never)}."
            if len(overtakes)
            else f"- The target never overtakes English after the peak ({_langs(never)})."
        ),
        (
            f"- At the output, mean P(target) ranges from {summary['final_p_target'].min():.2g} to "
            f"{summary['final_p_target'].max():.2g} ({top['lang']})."
        ),
        f"- {lambda_sentence(lambdas)}",
    ]
    return "\n".join(lines) + "\n"


BEFORE_PROTOCOL = "translation, fr source, 4-shot"


def changes_table(before: pd.DataFrame, after: pd.DataFrame, keys: list[str]) -> str:
    """Markdown rows of the ``keys`` (e.g. lang) whose PROM verdict differs between ``before``
    (the translation protocol) and ``after``, with what ``after`` dropped and scored by chain."""
    was = {tuple(row[keys]): verdict(row) for _, row in before.iterrows()}
    rows = [
        "| " + " | ".join(map(str, key)) + f" | {was[key]} | {verdict(row)} | {row['n']} | {row['n_dropped_copy']} "
        f"| {row['share_chain']:.0%} |"
        for key, row in sorted(((tuple(row[keys]), row) for _, row in after.iterrows()), key=lambda item: item[0])
        if key in was and was[key] != verdict(row)
    ]
    if not rows:
        return "No decision changed.\n"
    header = (
        "| " + " | ".join(keys) + f" | {BEFORE_PROTOCOL} | now | n | dropped as copies | scored by chain |\n"
        "|" + "---|" * (len(keys) + 2) + "---:|---:|---:|\n"
    )
    return header + "\n".join(rows) + "\n"


def decision_changes(folder: Path) -> str:
    """Before/after table of the languages whose decision changed between the translation sweep
    (``lambda_before_prom_protocol.csv``, French source, 4 demonstrations, prefix sets) and the
    current ``lambda.csv``."""
    before, after = pd.read_csv(folder / "lambda_before_prom_protocol.csv"), pd.read_csv(folder / "lambda.csv")
    if "task" not in after:
        return "The sweep has not been re-run under PROM's protocol yet: `lambda.csv` is still the translation sweep.\n"
    return changes_table(before, after, ["lang"])


def reports_lambda_changes(root: Path) -> str:
    """Before/after table of the (model, language) cells of the reports whose decision changed
    between the pages made before PROM's protocol (``lambda_before_prom_protocol.csv``) and now."""
    after = pd.concat(
        [pd.read_csv(p).assign(model=p.name.split("__")[0]) for p in sorted(root.glob("*/*__lambda.csv"))],
        ignore_index=True,
    )
    return changes_table(pd.read_csv(root / "lambda_before_prom_protocol.csv"), after, ["model", "lang"])


def bfloat16_agreement(folder: Path) -> pd.DataFrame:
    """:func:`dtype_agreement` of the sweep in ``folder`` (float32) and its bfloat16 re-run in
    ``folder/bfloat16``."""
    tables = [
        pd.read_csv(path / name) for path in (folder, folder / "bfloat16") for name in ("lambda.csv", "curves.csv")
    ]
    return dtype_agreement(*tables)


def bfloat16_findings(folder: Path) -> str:
    """Whether the bfloat16 sweep says what the float32 sweep says, from ``bfloat16/agreement.csv``."""
    table = pd.read_csv(folder / "bfloat16" / "agreement.csv")
    changed = table[~table["same_verdict"]]
    outside = table[table["points_inside"] < table["points"]]
    lines = [
        f"- PROM's verdict is the same under bfloat16 for {int(table['same_verdict'].sum())} of {len(table)} "
        f"languages; changed: "
        + (", ".join(f"{r.lang} ({r.verdict_float32} -> {r.verdict_bfloat16})" for r in changed.itertuples()) or "none")
        + ".",
        f"- {int(table['points_inside'].sum())} of {int(table['points'].sum())} curve points (mean P(en), mean "
        f"P(target) and entropy, every layer and language) lie inside float32's 95% interval; languages with a "
        f"point outside: {_langs(outside['lang'])}.",
        f"- Largest absolute differences: {table['max_abs_diff_p_en'].max():.2g} in mean P(en), "
        f"{table['max_abs_diff_p_target'].max():.2g} in mean P(target), {table['max_abs_diff_entropy_bits'].max():.2g} "
        "bits in entropy.",
        f"- bfloat16 agrees with float32 in every respect for {int(table['agrees'].sum())} of {len(table)} languages.",
    ]
    return "\n".join(lines) + "\n"


def reports_lambda_findings(root: Path) -> str:
    """PROM's decision per model over the languages of the diagnosis reports."""
    lines = []
    for model in sorted({p.name.split("__")[0] for p in root.glob("*/*__lambda.csv")}):
        lambdas = pd.concat([pd.read_csv(p) for p in sorted(root.glob(f"*/{model}__lambda.csv"))], ignore_index=True)
        lines.append(f"- {model}: {lambda_sentence(lambdas)}")
    return "\n".join(lines) + "\n"


LENS_SECTION = "Latent language (logit lens) and PROM lambda"
#: the diagnosis-cell time target (minutes, from an empty results store)
CELL_TARGET_MINUTES = 12


def _general_question(question: str, lang: str) -> str:
    """The question with its language code written ``<lang>``, so languages share a question."""
    return question.replace(f" {lang} ", " <lang> ").replace(f" {lang}?", " <lang>?")


def reports_answers(root: Path) -> str:
    """Each model's answers over the languages of the reports (``verdicts.csv``), question by
    question, languages with the same answer together; the lens section is the lambda block's."""
    verdicts = pd.read_csv(root / "verdicts.csv", dtype=str, keep_default_na=False)
    verdicts = verdicts[verdicts["section"] != LENS_SECTION]
    verdicts = verdicts.assign(
        question=[_general_question(q, lang) for q, lang in zip(verdicts["question"], verdicts["lang"])]
    )
    lines = []
    for model, rows in verdicts.groupby("model", sort=True):
        lines.append(f"- **{model}**")
        for question, group in rows.groupby("question", sort=False):
            answers = group.groupby("answer", sort=False)["lang"].agg(lambda langs: ", ".join(sorted(langs)))
            order = sorted(answers.items(), key=lambda item: (-len(item[1].split(", ")), item[1]))
            lines.append(f"  - {question} " + "; ".join(f"{answer} ({langs})" for answer, langs in order))
    return "\n".join(lines) + "\n"


def reports_timings(root: Path) -> str:
    """Minutes per section of every diagnosis cell computed from an empty results store
    (``compute_timings.csv``), with the median, the slowest cell and the cells over the target."""
    timings = pd.read_csv(root / "compute_timings.csv")
    minutes = timings.pivot_table(index=["model", "lang"], columns="section", values="seconds", aggfunc="sum") / 60
    minutes = minutes[[s for s in timings["section"].unique() if s in minutes.columns]]
    minutes["total"] = minutes.sum(axis=1)
    table = minutes.reset_index().to_markdown(index=False, floatfmt=".1f")
    model, lang = minutes.index[minutes["total"].to_numpy().argmax()]
    over = minutes[minutes["total"] > CELL_TARGET_MINUTES].index
    return (
        f"{table}\n\n{len(minutes)} cells; median {minutes['total'].median():.1f} min, slowest "
        f"{minutes['total'].max():.1f} min ({model}, {lang}); over {CELL_TARGET_MINUTES} min: "
        + (", ".join(f"{name} {code}" for name, code in over) or "none")
        + ".\n"
    )


def lcb_comparison(folder: Path) -> pd.DataFrame:
    """The paper's Table 3/4 averages (``paper_table3.csv``) beside the overall rows of every
    model run on the real LCB (``*/metrics_with_ci.csv``): ``compare_with_paper``'s table."""
    ours = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*/metrics_with_ci.csv"))], ignore_index=True)
    return compare_with_paper(ours, pd.read_csv(folder / "paper_table3.csv"))


def _percent(row, metric: str) -> str:
    return f"{100 * row[metric]:.1f} [{100 * row[f'{metric}_low']:.1f}, {100 * row[f'{metric}_high']:.1f}]"


def lcb_overall(folder: Path) -> str:
    """Each model's LPR and WPR over all of a task's prompts (95% interval), and the languages
    whose LPR falls short of 100%."""
    lines = [
        "| task | model | prompts | LPR % [95% CI] | WPR % [95% CI] | languages with LPR < 100% (LPR) |",
        "|---|---|---:|---|---|---|",
    ]
    for path in sorted(folder.glob("*/metrics_with_ci.csv")):
        metrics = pd.read_csv(path)
        per_language = metrics[(metrics["source"] == "all") & (metrics["language"] != "all")]
        for task in TASK_ORDER:
            row = metrics[(metrics["task"] == task) & (metrics["source"] == "all") & (metrics["language"] == "all")]
            row = row.iloc[0]
            short = per_language[(per_language["task"] == task) & (per_language["lpr"] < 1)].sort_values("language")
            below = ", ".join(f"{r['language']} {100 * r['lpr']:.0f}" for r in short.to_dict("records")) or "none"
            lines.append(
                f"| {task} | {row['model']} | {row['n']} | {_percent(row, 'lpr')} | {_percent(row, 'wpr')} | {below} |"
            )
    return "\n".join(lines) + "\n"


def _models_at(rows: pd.DataFrame, value: float) -> str:
    return ", ".join(rows[rows["lpr_avg"] == value]["model"])


def lcb_gap(folder: Path) -> str:
    """Where our models' average LPR falls among the paper's models, per task."""
    table = lcb_comparison(folder)
    lines = []
    for task in TASK_ORDER:
        rows = table[table["task"] == task]
        paper, ours = rows[rows["from"] == "paper"], rows[rows["from"] == "pivotlens"]
        low, high = paper["lpr_avg"].min(), paper["lpr_avg"].max()
        mine = "; ".join(f"{r.model} {r.lpr_avg:.1f}" for r in ours.itertuples())
        below = ", ".join(ours[ours["lpr_avg"] < low]["model"]) or "none"
        lines.append(
            f"- {task.capitalize()} LPR (%): {mine}. The paper's {len(paper)} models range from "
            f"{low:.1f} ({_models_at(paper, low)}) to {high:.1f} ({_models_at(paper, high)}); "
            f"below all of them: {below}."
        )
    return "\n".join(lines) + "\n"


LCB_FINDINGS: dict[str, Callable[[Path], str]] = {
    "overall": lcb_overall,
    "comparison": lambda folder: lcb_comparison(folder).to_markdown(index=False) + "\n",
    "gap": lcb_gap,
}
REPORTS_FINDINGS: dict[str, Callable[[Path], str]] = {
    "lambda": reports_lambda_findings,
    "changes": reports_lambda_changes,
    "answers": reports_answers,
    "timings": reports_timings,
}


def derived_tables(results: Path) -> dict[str, Callable[[Path], pd.DataFrame]]:
    """The tables derived from other tables, by path under ``results``: the LCB comparison with
    the paper, and the bfloat16 agreement of every sweep that has a bfloat16 re-run."""
    reruns = sorted(path.parents[1].name for path in results.glob("lens/*/bfloat16/lambda.csv"))
    return {
        "confusion/lcb/comparison.csv": lambda root: lcb_comparison(root / "confusion" / "lcb"),
        **{
            f"lens/{model}/bfloat16/agreement.csv": lambda root, model=model: bfloat16_agreement(root / "lens" / model)
            for model in reruns
        },
    }


GENERATORS: dict[str, Callable[[str, Path], str]] = {
    "lens": lambda model, results: lens_findings(results / "lens" / model),
    "changes": lambda model, results: decision_changes(results / "lens" / model),
    "bfloat16": lambda model, results: bfloat16_findings(results / "lens" / model),
    "reports": lambda what, results: REPORTS_FINDINGS[what](results / "reports"),
    "lcb": lambda what, results: LCB_FINDINGS[what](results / "confusion" / "lcb"),
}


def generate(key: str, results: Path = RESULTS) -> str:
    kind, _, argument = key.partition(":")
    if kind not in GENERATORS:
        raise KeyError(f"unknown findings block {key!r}; known kinds: {', '.join(GENERATORS)}")
    return GENERATORS[kind](argument, results)


def render(readme: Path, results: Path = RESULTS) -> str:
    """The README's text with every findings block regenerated from the tables."""
    return BLOCK.sub(lambda m: m["open"] + generate(m["key"], results) + m["close"], readme.read_text(encoding="utf-8"))


def stale_blocks(readme: Path, results: Path = RESULTS) -> list[str]:
    """Keys of the blocks whose text differs from what the tables say."""
    text = readme.read_text(encoding="utf-8")
    return [m["key"] for m in BLOCK.finditer(text) if m["body"] != generate(m["key"], results)]


def stale_derived(results: Path = RESULTS) -> dict[Path, str]:
    """The derived tables whose file differs from what their source tables give, with that text."""
    wanted = {results / name: make(results).to_csv(index=False) for name, make in derived_tables(results).items()}
    return {path: text for path, text in wanted.items() if not path.is_file() or path.read_text() != text}


def refresh(readmes: list[Path], *, check: bool = False, results: Path = RESULTS) -> dict[Path, list[str]]:
    """Per README, the keys of its blocks that disagree with their tables; each such README is
    rewritten unless ``check``."""
    stale = {readme: stale_blocks(readme, results) for readme in readmes}
    for readme, keys in stale.items():
        if keys and not check:
            readme.write_text(render(readme, results), encoding="utf-8")
    return stale
