"""Fit lenses into the cache, evaluate them on held-out text, and run PROM's rule under each lens
(``pivotlens fit-lens``, ``pivotlens lens-eval``, ``pivotlens lambda --lens all``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analyses.figures import save_figure
from analyses.figures.lens_family import kl_figure
from analyses.pipelines.lens import run_languages
from analyses.stats.lens_family import beats_logit, bias_table, lens_agreement
from analyses.stats.prom_lambda import EMPTY_FLOOR, analyse
from probes.backend import Backend
from probes.backend.lens_fit import check_token_count, fit_linear, fit_tuned, fitting_tokens
from probes.backend.lenses import Lens, LensNotFittedError, default_name, load_lens, save_lens
from probes.backend.store import write_text_atomic
from probes.inputs.instruction_data import INSTRUCTIONS
from probes.inputs.lens_corpus import balanced_rows, fitting_texts, heldout_texts, load_text_corpus, select_languages
from probes.inputs.lm_corpus import SENTENCES
from probes.lens_eval import lens_eval

SHIPPED_FIT = f"{SENTENCES.name} (accumulation part) + {INSTRUCTIONS.name}"
SHIPPED_EVAL = f"{SENTENCES.name} (held-out part)"


def _sha256(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def corpus_texts(
    corpus: str | Path | None, langs: Sequence[str] | None, *, heldout: bool
) -> tuple[dict[str, list[str]], str, str]:
    """Texts per language, a description of the corpus and its sha256 (read before any model loads)."""
    if corpus is not None:
        texts, source, files = load_text_corpus(corpus), str(corpus), [Path(corpus)]
    elif heldout:
        texts, source, files = heldout_texts(), SHIPPED_EVAL, [SENTENCES]
    else:
        texts, source, files = fitting_texts(), SHIPPED_FIT, [SENTENCES, INSTRUCTIONS]
    return select_languages(texts, langs, source), source, _sha256(files)


def fit_lens(
    backend: Backend,
    kind: str,
    texts: dict[str, list[str]],
    *,
    source: str,
    corpus_sha256: str,
    langs: Sequence[str] | None = None,
    tokens: int | None = None,
    name: str | None = None,
    seed: int = 0,
    steps: int = 50,
    tokens_per_step: int = 64,
    lr: float = 1e-3,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[Lens, Path]:
    """Fit a ``linear`` or ``tuned`` lens on ``texts`` (balanced by tokens across languages) and
    save it into the cache (named ``kind`` or ``kind-<langs>`` when ``langs`` restricts it); the
    tuned lens starts from the linear lens of the same languages
    (fitted on the same rows when it is not in the cache yet)."""
    name = name or default_name(kind, langs)
    by_lang = balanced_rows(backend.tokenize, texts, tokens)
    rows = [row for lang_rows in by_lang.values() for row in lang_rows]
    check_token_count(fitting_tokens(rows), backend.d_model, source)
    if kind == "linear":
        lens = fit_linear(backend, rows, name=name, batch_size=batch_size, progress=progress)
    elif kind == "tuned":
        try:
            init = load_lens(backend, default_name("linear", langs))
        except LensNotFittedError:
            init = fit_linear(backend, rows, batch_size=batch_size, progress=progress)
        lens = fit_tuned(
            backend,
            rows,
            init=init,
            name=name,
            steps=steps,
            tokens_per_step=tokens_per_step,
            lr=lr,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
    else:
        raise ValueError(f"kind must be 'linear' or 'tuned', not {kind!r}")
    lens.record.update(
        corpus=source,
        corpus_sha256=corpus_sha256,
        languages=list(by_lang),
        seed=seed,
        tokens_per_language={lang: sum(len(r) - 1 for r in lang_rows) for lang, lang_rows in by_lang.items()},
        model=backend.model_name,
    )
    return lens, save_lens(lens, backend.weights_hash)


def evaluate(
    backend: Backend,
    names: Sequence[str],
    texts: dict[str, list[str]],
    *,
    tokens: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """The ``lens-eval`` table of the named lenses on ``texts`` (balanced by tokens)."""
    lenses = [load_lens(backend, name) for name in names]
    table = lens_eval(
        backend, lenses, balanced_rows(backend.tokenize, texts, tokens), batch_size=batch_size, progress=progress
    )
    table.insert(0, "model", backend.model_name)
    return table


def write_evaluation(table: pd.DataFrame, out: Path, *, model: str, source: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in {"lens_eval": table, "lens_vs_logit": beats_logit(table)}.items():
        write_text_atomic(frame.to_csv(index=False), out / f"{name}.csv")
        written.append(out / f"{name}.csv")
    return written + write_figures(out, model=model, source=source)


def write_figures(out: Path, *, model: str, source: str) -> list[Path]:
    """The KL figure of the lens evaluation in ``out``, drawn from its ``lens_eval.csv``;
    ``model`` and the text ``source`` are named in the title. HTML with plotly.js beside it."""
    title = f"{model}: KL of each lens to the final distribution on {source} (mean over languages, band = range)"
    return save_figure(kl_figure(pd.read_csv(out / "lens_eval.csv"), title=title), out / "lens_kl")


def lambda_under_lenses(
    backend: Backend,
    names: Sequence[str],
    langs: list[str],
    *,
    layer: int | None = None,
    lambda0: float = 0.1,
    floor: float = EMPTY_FLOOR,
    **run_options,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The lens table, PROM's lambda table (both with a ``lens`` column) under each named lens,
    and :func:`lens_agreement` of the decisions."""
    lenses = [load_lens(backend, name) for name in names]  # an unfitted lens fails before any work
    tables, lambdas = [], []
    for name, lens in zip(names, lenses):
        table = run_languages(backend, langs, lens=lens, **run_options)
        result = analyse(table, n_layers=backend.n_layers, layer=layer, lambda0=lambda0, floor=floor)
        tables.append(table)
        lambdas.append(result.lambdas.assign(lens=name))
    stacked = pd.concat(lambdas, ignore_index=True)
    return pd.concat(tables, ignore_index=True), stacked, lens_agreement(stacked)


def write_lambda_by_lens(
    lens_table: pd.DataFrame, lambdas: pd.DataFrame, agreement: pd.DataFrame, out: Path
) -> list[Path]:
    """``lambda_by_lens.csv``, ``lens_agreement.csv``, ``lens_curves.csv`` (mean P per lens,
    language and layer) and, when both fits are there, ``lens_bias.csv``: the English-only
    (``linear-en``) against the multilingual (``linear``) fit at PROM's layer."""
    out.mkdir(parents=True, exist_ok=True)
    latent = "p_en" if "p_en" in lens_table.columns else None
    curves = (
        lens_table.groupby(["lens", "lang", "layer"])[["p_target", *([latent] if latent else [])]].mean().reset_index()
    )
    tables = {"lambda_by_lens": lambdas, "lens_agreement": agreement, "lens_curves": curves}
    if latent and {"linear", "linear-en"} <= set(lens_table["lens"]):
        tables["lens_bias"] = bias_table(lens_table, layer=int(lambdas["layer"].iloc[0]))
    for name, table in tables.items():
        write_text_atomic(table.to_csv(index=False), out / f"{name}.csv")
    return [out / f"{name}.csv" for name in tables]
