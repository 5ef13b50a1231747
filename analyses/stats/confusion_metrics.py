"""Language Confusion Benchmark pass rates: LPR, WPR and LCPR (Marchisio et al. 2024, §3;
``compute_metrics.py`` of for-ai/language-confusion; docs/methods/language-confusion.md).

Each completion is judged by :func:`probes.language_id.judge` (normalisation, ``"\\n"`` line
split, lines of at least 5 tokens, fastText ``lid.176`` with threshold 0.3 where ``'unknown'``
is an error, English words from Debian's ``wamerican`` list for ar, hi, ja, ko, ru, zh; see
that module for the offline substitutes). Per ``(source, language)`` group, with ``R`` the
non-skipped completions, ``E_L`` those with a line error and ``E_W`` those with an English
word but no line error:

* ``LPR = 1 - |E_L| / max(1, |R|)``;
* ``WPR = 1 - |E_W| / max(1, |R| - |E_L|)``, only for ar, hi, ja, ko, ru, zh (missing, NaN,
  for the other languages, whose Latin script makes the word check meaningless);
* ``LCPR = 2 · LPR · WPR / (LPR + WPR)`` (the paper's harmonic mean; 0 when both are 0).
  The benchmark's code has no LCPR. Where WPR is missing, **LCPR = LPR** (per group), and
  the aggregate rows average the per-group LCPRs exactly as LPR is averaged; so an aggregate
  LCPR is *not* the harmonic mean of the aggregate LPR and WPR.
* ``acc`` (code only, not in the paper): mean over non-skipped completions of the fraction
  of kept lines in the right language.

A group whose completions are all skipped has LPR = WPR = 1 (the benchmark's ``max(1, .)``).

Aggregation (``compute_all_metrics``): per ``(task, model)``, then per ``(source, language)``
group; ``(source, 'all')`` is the mean over that source's languages; ``('all', language)`` the
mean over that language's sources; ``('all', 'all')`` the mean of the per-language means.
WPR is averaged only where it exists. ``n`` counts completions (skipped ones included).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.stats.intervals import bootstrap_indices, percentile_interval
from probes.backend.errors import DataFormatError
from probes.inputs.confusion_data import read_records
from probes.language_id import WORD_LEVEL_LANGUAGES, judge

OUTPUT_COLUMNS = ("id", "model", "completion", "task", "source", "language")  # the benchmark's output CSV
METRIC_COLUMNS = ("task", "model", "source", "language", "n", "lpr", "wpr", "lcpr")
ALL = "all"
#: The Language Confusion Benchmark's languages (Marchisio et al. 2024, Table 1).
BENCHMARK_LANGUAGES = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "pt", "ru", "tr", "vi", "zh")


def read_completions(path: str | Path) -> pd.DataFrame:
    """A CSV of completions in the benchmark's output format (``id, model, completion, task,
    source, language``; other columns are kept). Errors name the file, line and column."""
    path = Path(path)
    header, records = read_records(path, "a CSV of completions in the benchmark's output format")
    missing = [c for c in OUTPUT_COLUMNS if c not in header]
    if missing:
        raise DataFormatError(
            f"{path}:1: missing column(s) {', '.join(missing)}; the benchmark's output format has "
            f"{', '.join(OUTPUT_COLUMNS)} (found {', '.join(header)})"
        )
    for line, row in records:
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}:{line}: {len(row)} fields, the header has {len(header)} ({','.join(header)})"
            )
        for column in ("task", "source", "language"):
            if not row[header.index(column)].strip():
                raise DataFormatError(f"{path}:{line}, column {header.index(column) + 1} ({column}): empty cell")
        language = row[header.index("language")].strip()
        if language not in BENCHMARK_LANGUAGES:
            raise DataFormatError(
                f"{path}:{line}, column {header.index('language') + 1} (language): {language!r} is not a language of "
                f"the benchmark; use one of {', '.join(BENCHMARK_LANGUAGES)}"
            )
    table = pd.DataFrame([row for _, row in records], columns=header, dtype=str)
    for column in ("task", "source", "language", "model"):
        table[column] = table[column].str.strip()
    return table


def judge_completions(outputs: pd.DataFrame, words: frozenset[str] | None = None) -> pd.DataFrame:
    """One row per completion with the benchmark's judgement: ``error_type``, ``skipped``,
    ``line_error``, ``word_error``, ``n_lines``, ``line_errors``. ``words``: the English word
    list of the word-level check (default: :func:`probes.language_id.en_words`)."""
    judgements = [
        judge(str(text), str(lang), words=words) for text, lang in zip(outputs["completion"], outputs["language"])
    ]
    judged = outputs.copy()
    judged["error_type"] = [j.error_type for j in judgements]
    judged["skipped"] = [j.skipped for j in judgements]
    judged["line_error"] = [j.line_error for j in judgements]
    judged["word_error"] = [j.word_error for j in judgements]
    judged["n_lines"] = [j.n_lines for j in judgements]
    judged["line_errors"] = [j.line_errors for j in judgements]
    return judged


def lcpr(lpr: np.ndarray | float, wpr: np.ndarray | float) -> np.ndarray:
    """Harmonic mean of LPR and WPR (0 when both are 0); LPR where WPR is missing (NaN)."""
    lpr, wpr = np.asarray(lpr, dtype=float), np.asarray(wpr, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        harmonic = np.where(lpr + wpr > 0, 2 * lpr * wpr / (lpr + wpr), 0.0)
    return np.where(np.isnan(wpr), lpr, harmonic)


def _rates(flags: dict[str, np.ndarray], lang: str) -> dict[str, np.ndarray]:
    """LPR, WPR, LCPR, acc of one group from per-completion flags ``[..., n]`` (a leading axis
    holds bootstrap resamples); every result has the leading shape."""
    scored = ~flags["skipped"]
    n_scored = scored.sum(-1)
    with_line = (flags["line_error"] & scored).sum(-1)
    with_word = (flags["word_error"] & scored).sum(-1)
    lpr = 1 - with_line / np.maximum(1, n_scored)
    if lang in WORD_LEVEL_LANGUAGES:
        wpr = 1 - with_word / np.maximum(1, n_scored - with_line)
    else:
        wpr = np.full(np.shape(lpr), np.nan)
    acc = np.where(n_scored > 0, (flags["line_acc"] * scored).sum(-1) / np.maximum(1, n_scored), 1.0)
    return {"lpr": lpr, "wpr": wpr, "lcpr": lcpr(lpr, wpr), "acc": acc}


def _mean(values: list[np.ndarray]) -> np.ndarray:
    """Mean over groups, ignoring groups where the metric is missing (the benchmark's
    ``average_metrics``); NaN where every group misses it."""
    stacked = np.stack(values)
    present = ~np.isnan(stacked)
    total = np.where(present, stacked, 0.0).sum(0)
    count = present.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _flags(judged: pd.DataFrame) -> dict[str, np.ndarray]:
    n_lines = judged["n_lines"].to_numpy()
    return {
        "skipped": judged["skipped"].to_numpy(bool),
        "line_error": judged["line_error"].to_numpy(bool),
        "word_error": judged["word_error"].to_numpy(bool),
        "line_acc": np.where(n_lines > 0, 1 - judged["line_errors"].to_numpy() / np.maximum(n_lines, 1), 0.0),
    }


def group_metrics(judged: pd.DataFrame, lang: str) -> dict[str, float]:
    """The benchmark's ``compute_metrics`` for one ``(source, language)`` group of judged
    completions: ``n``, ``n_scored`` and the fractions ``lpr``, ``wpr`` (NaN when undefined),
    ``lcpr``, ``acc``."""
    flags = _flags(judged)
    rates = {m: float(v) for m, v in _rates(flags, lang).items()}
    return {"n": len(judged), "n_scored": int((~flags["skipped"]).sum()), **rates}


def _resample(flags: dict[str, np.ndarray], n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    index = bootstrap_indices(len(flags["skipped"]), n_boot, rng)
    return {key: value[index] for key, value in flags.items()}


def _aggregate(
    keys: list[tuple[str, str]], rates: list[dict[str, np.ndarray]]
) -> list[tuple[tuple[str, str], dict[str, np.ndarray]]]:
    """The benchmark's averaging: per-group rows, then per source, per language and overall
    (the mean of the per-language means)."""
    by_key = dict(zip(keys, rates))
    sources, langs = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})

    def average(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {m: _mean([r[m] for r in members]) for m in ("lpr", "wpr", "lcpr", "acc")}

    per_source = {s: average([r for k, r in by_key.items() if k[0] == s]) for s in sources}
    per_lang = {lang: average([r for k, r in by_key.items() if k[1] == lang]) for lang in langs}
    rows = list(by_key.items())
    rows += [((s, ALL), m) for s, m in per_source.items()]
    rows += [((ALL, lang), m) for lang, m in per_lang.items()]
    return rows + [((ALL, ALL), average(list(per_lang.values())))]


def compute_all_metrics(judged: pd.DataFrame, *, n_boot: int = 0, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The benchmark's ``compute_all_metrics`` over judged completions, per ``(task, model)``:
    rows per ``(source, language)``, then ``(source, all)``, ``(all, language)`` and
    ``(all, all)``, in that order. Columns: ``task, model, source, language, n, n_scored,
    lpr, wpr, lcpr, acc`` (fractions in [0, 1]; WPR is NaN where undefined).

    With ``n_boot > 0`` every metric also gets a percentile bootstrap interval
    (``lpr_low``, ``lpr_high``, ...): completions are resampled within each
    ``(source, language)`` group and the whole aggregation is recomputed per resample.
    """
    rng = np.random.default_rng(seed)
    records = []
    for (task, model), outputs in judged.groupby(["task", "model"], sort=True):
        keys, points, boots, counts = [], [], [], []
        for (source, lang), group in outputs.groupby(["source", "language"], sort=True):
            flags = _flags(group)
            keys.append((source, lang))
            points.append(_rates(flags, str(lang)))
            boots.append(_rates(_resample(flags, n_boot, rng), str(lang)) if n_boot else None)
            counts.append((len(group), int((~flags["skipped"]).sum())))

        point_rows = _aggregate(keys, points)
        boot_rows = _aggregate(keys, boots) if n_boot else [(key, None) for key, _ in point_rows]
        for ((source, lang), point), (_, boot) in zip(point_rows, boot_rows):
            n, n_scored = (
                sum(c[i] for k, c in zip(keys, counts) if source in (ALL, k[0]) and lang in (ALL, k[1])) for i in (0, 1)
            )
            record = {"task": task, "model": model, "source": source, "language": lang, "n": n, "n_scored": n_scored}
            record |= {m: float(v) for m, v in point.items()}
            if boot is not None:
                for m, v in boot.items():
                    record[f"{m}_low"], record[f"{m}_high"] = percentile_interval(v[~np.isnan(v)], level)
            records.append(record)
    return pd.DataFrame.from_records(records)


def score_completions(
    outputs: pd.DataFrame, *, words: frozenset[str] | None = None, n_boot: int = 0, seed: int = 0
) -> pd.DataFrame:
    """Judge and aggregate completions in the benchmark's output format."""
    return compute_all_metrics(judge_completions(outputs, words), n_boot=n_boot, seed=seed)


def paper_table(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric in the layout of Marchisio et al.'s Table 3: a row per ``(task, model)``,
    columns ``task, model, avg`` and then one per language, in percent. ``avg`` is the
    ``(all, all)`` row (the mean of the per-language means) and each language the
    ``(all, language)`` row (the mean over that language's datasets); a language the task
    does not have, or where the metric is undefined (WPR in Latin-script languages), is NaN."""
    per_language = metrics[metrics["source"] == ALL]
    table = per_language.pivot_table(index=["task", "model"], columns="language", values=metric, dropna=False)
    languages = sorted(c for c in table.columns if c != ALL)
    table = (100 * table[[ALL, *languages]]).rename(columns={ALL: "avg"}).round(1)
    return table.reset_index().rename_axis(columns=None)


def read_paper_table3(text: str, source: str) -> pd.DataFrame:
    """The released numbers of Marchisio et al.'s Table 3 (LPR per language, monolingual and
    cross-lingual) and Table 4 (average WPR) from the paper's text, as a long table ``model,
    task, metric, language, value, source`` (percent; ``language`` 'avg' for the average).
    Rows are the tab-separated lines after the ``Monolingual``/``Cross-lingual`` headers."""
    records, header, task = [], [], ""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Line-level pass rate (LPR)"))
    for line in lines[start:]:
        cells = [re.sub(r"</?b>", "", c).strip() for c in line.strip("\n").split("\t")]
        if line.startswith("Table 3:"):
            break
        if cells[0] == "" and len(cells) > 2 and cells[1] == "avg":
            header = cells[1:]
        elif cells[0] == "" and len(cells) > 1 and cells[1] in ("Monolingual", "Cross-lingual"):
            task = "monolingual" if cells[1] == "Monolingual" else "crosslingual"
        elif header and len(cells) == len(header) + 1:
            for lang, value in zip(header, cells[1:]):
                if lang != "-" and value != "-":
                    records.append((cells[0], task, "lpr", lang, float(value), source))
    wpr = next(i for i, line in enumerate(lines) if line.startswith("## Word-level pass rate (WPR)"))
    for line in lines[wpr:]:
        if line.startswith("Table 4:"):
            break
        cells = [re.sub(r"</?b>", "", c).strip() for c in line.split("\t")]
        if len(cells) == 3 and cells[0]:
            records += [(cells[0], t, "wpr", "avg", float(v), source) for t, v in zip(TASK_ORDER, cells[1:])]
    return pd.DataFrame.from_records(records, columns=["model", "task", "metric", "language", "value", "source"])


TASK_ORDER = ("monolingual", "crosslingual")


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our models' averages beside the paper's rows: ``task, model, lpr_avg, wpr_avg``
    (percent), the paper's models first, in its order. ``ours`` holds ``compute_all_metrics``
    rows; the paper's WPR is its Table 4 average over non-Latin-script languages, ours the
    benchmark's average over the languages where WPR is defined (the same set)."""
    rows = []
    for task in TASK_ORDER:
        for model in dict.fromkeys(paper["model"]):
            mine = paper[(paper["model"] == model) & (paper["task"] == task) & (paper["language"] == "avg")]
            values = dict(zip(mine["metric"], mine["value"]))
            rows.append((task, model, values.get("lpr", np.nan), values.get("wpr", np.nan), "paper"))
        overall = ours[(ours["task"] == task) & (ours["source"] == ALL) & (ours["language"] == ALL)]
        for row in overall.to_dict("records"):
            rows.append((task, row["model"], round(100 * row["lpr"], 1), round(100 * row["wpr"], 1), "pivotlens"))
    return pd.DataFrame.from_records(rows, columns=["task", "model", "lpr_avg", "wpr_avg", "from"])
