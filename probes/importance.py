"""First-order Taylor importance per parameter (Zhang et al. 2024, "Unveiling Linguistic Regions
in LLMs", Eq. 4; docs/methods/linguistic-regions.md).

For a language's corpus split into groups ``g`` of sentences with token-mean next-token loss ``L_g``::

    I = | theta * sum_g dL_g/dtheta |          (mode "sum_then_abs", the reference code)
    I = sum_g | theta * dL_g/dtheta |          (mode "abs_per_batch", an option)

where ``g`` runs over groups of 64 consecutive sentences (the released code's micro-step of
8 GPUs x 8 sequences; ``group_size``), whatever the compute batch.

The reference never steps or zeroes the optimizer, so its gradient is the running sum of the
signed per-group gradients and the absolute value comes last. Gradients are summed
in float32 as they arrive: one float32 accumulator per parameter in scope is the only copy
kept beyond the model. Scope ``"layers"`` is every parameter inside the decoder blocks, norms
included (the reference code: names containing ``layers.``); ``"all"`` adds embeddings, final norm and head.

Importance is stored per language as float32 safetensors (full precision: in bfloat16 many
entries tie at a top-k threshold, and regions are selected from these maps) inside the
results-store run folder, with the provenance in the file's metadata; the probe's table summarises it per tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from probes.backend import Backend
from probes.backend.errors import InputError
from probes.backend.grad_sum import add_loss_grads
from probes.backend.scopes import ParameterScope
from probes.backend.store import ResultsStore, provenance
from probes.inputs.lm_corpus import LMBatch, lm_batches
from probes.registry import register_probe

Mode = Literal["sum_then_abs", "abs_per_batch"]
Scope = Literal["layers", "all"]
MODES: tuple[Mode, ...] = ("sum_then_abs", "abs_per_batch")
SCOPES: tuple[Scope, ...] = ("layers", "all")
IMPORTANCE_FILE = "importance.safetensors"

IMPORTANCE_COLUMNS = {
    "lang": "language of the corpus the importance was accumulated on",
    "param": "parameter tensor (Hugging Face name)",
    "layer": "0-based block index (-1 outside the blocks: embeddings, final norm, head)",
    "module": "the tensor's role inside its block, e.g. self_attn.o_proj or input_layernorm (ParameterScope.role)",
    "numel": "number of entries of the tensor",
    "importance_sum": "sum over the tensor's entries of the importance I (Eq. 4)",
    "importance_mean": "mean importance per entry (importance_sum / numel)",
    "importance_max": "largest importance of an entry",
    "n_sequences": "sentences the importance was accumulated over",
    "n_tokens": "predicted tokens the importance was accumulated over",
    "mean_loss": "mean over groups of the group's token-mean next-token loss (nats)",
    "mode": "sum_then_abs (|theta * sum_g grad_g|) or abs_per_batch (sum_g |theta * grad_g|), g over groups of "
    "sentences",
}


@dataclass
class ImportanceMap:
    """Importance of every parameter in scope for one language, float32, parameter-shaped."""

    lang: str
    importance: dict[str, torch.Tensor]
    n_sequences: int
    n_tokens: int
    mean_loss: float
    mode: str


def scope_names(backend: Backend, scope: Scope = "layers") -> list[str]:
    """Parameter names in scope: inside the decoder blocks (``"layers"``) or all trainable ones."""
    if scope not in SCOPES:
        raise InputError(f"scope must be one of {SCOPES}, not {scope!r}")
    trainable = backend.trainable_parameters()
    return [
        name
        for name, where in backend.parameter_scopes().items()
        if name in trainable and (scope == "all" or where.layer is not None)
    ]


GROUP_SIZE = 64  # sequences per gradient group: the released code's micro-step (8 GPUs x 8 sequences)


def _groups(
    backend: Backend, texts: Sequence[str], group_size: int, batch_size: int, max_tokens: int
) -> Iterator[list[LMBatch]]:
    """Consecutive groups of ``group_size`` texts (corpus order), each cut into compute batches."""
    if group_size < 1:
        raise InputError(f"group_size must be >= 1 (got {group_size})")
    for start in range(0, len(texts), group_size):
        batches = list(
            lm_batches(backend, texts[start : start + group_size], batch_size=batch_size, max_tokens=max_tokens)
        )
        if batches:
            yield batches


def _predicted_tokens(batch: LMBatch) -> int:
    return int((batch.labels[:, 1:] != -100).sum())


def accumulate_importance(
    backend: Backend,
    texts: Sequence[str],
    *,
    lang: str = "",
    scope: Scope = "layers",
    mode: Mode = "sum_then_abs",
    group_size: int = GROUP_SIZE,
    batch_size: int = 8,
    max_tokens: int = 512,
    progress: bool = True,
) -> ImportanceMap:
    """Taylor importance of every parameter in ``scope`` over ``texts`` (Eq. 4).

    The gradient is summed over *groups* of ``group_size`` consecutive sentences, each group's
    gradient being that of its token-mean next-token loss, as the released code sums one
    gradient per micro-step of 64 sequences (8 GPUs x 8). The grouping is part of the
    definition (and of the run key): ``sum_then_abs`` gives ``|theta * sum_g grad_g|`` and
    ``abs_per_batch`` gives ``sum_g |theta * grad_g|``. ``batch_size`` is only the compute
    batch: a group is processed in compute batches whose mean-loss gradients are weighted by
    their share of the group's predicted tokens, so the map does not depend on it (up to float
    rounding). Gradients are summed in float32 as they arrive (``probes.backend.grad_sum``).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, not {mode!r}")
    names = scope_names(backend, scope)
    params = backend.named_parameters()

    def zeros() -> dict[str, torch.Tensor]:
        return {n: torch.zeros(params[n].shape, dtype=torch.float32, device=params[n].device) for n in names}

    accumulator = zeros()
    group_grad = zeros() if mode == "abs_per_batch" else accumulator  # sum_then_abs is linear: add straight in
    n_sequences = n_tokens = n_groups = 0
    loss_sum = 0.0
    with (
        backend.frozen_except(names),  # a 170M-entry embedding out of scope costs no gradient
        tqdm(
            total=len(texts),
            desc=f"importance {lang or ''} {backend.model_name}".strip(),
            unit="sent",
            disable=not progress,
        ) as bar,
    ):
        for batches in _groups(backend, texts, group_size, batch_size, max_tokens):
            group_tokens = sum(_predicted_tokens(b) for b in batches)
            for batch in batches:
                weight = _predicted_tokens(batch) / group_tokens
                loss, tokens = add_loss_grads(
                    backend, batch.enc, batch.labels, group_grad, lambda _, g, w=weight: g.float().mul_(w)
                )
                n_sequences, n_tokens, loss_sum = (
                    n_sequences + batch.n_sentences,
                    n_tokens + tokens,
                    loss_sum + weight * loss,
                )
                bar.update(batch.n_sentences)
            n_groups += 1
            if mode == "abs_per_batch":
                with torch.no_grad():
                    for name in names:
                        accumulator[name].add_(group_grad[name].mul_(params[name].detach().float()).abs_())
                        group_grad[name].zero_()
    if n_groups == 0:
        raise ValueError(f"no sentence of {lang or 'the corpus'} has two tokens or more; nothing to accumulate")
    if mode == "sum_then_abs":
        with torch.no_grad():
            for name in names:
                accumulator[name].mul_(params[name].detach().float()).abs_()
    return ImportanceMap(lang, accumulator, n_sequences, n_tokens, loss_sum / n_groups, mode)


def summarise(imap: ImportanceMap, scopes: Mapping[str, ParameterScope]) -> pd.DataFrame:
    """One row per tensor: where the importance sits (columns in ``IMPORTANCE_COLUMNS``;
    ``scopes`` from ``Backend.parameter_scopes()``)."""
    rows = []
    for name, values in imap.importance.items():
        where = scopes[name]
        total = float(values.double().sum())
        rows.append(
            {
                "lang": imap.lang,
                "param": name,
                "layer": where.block_index,
                "module": where.role,
                "numel": values.numel(),
                "importance_sum": total,
                "importance_mean": total / values.numel(),
                "importance_max": float(values.max()),
                "n_sequences": imap.n_sequences,
                "n_tokens": imap.n_tokens,
                "mean_loss": imap.mean_loss,
                "mode": imap.mode,
            }
        )
    return pd.DataFrame.from_records(rows, columns=list(IMPORTANCE_COLUMNS))


def save_importance(imap: ImportanceMap, path: Path, prov: Mapping[str, object]) -> None:
    """float32 safetensors with the provenance (and counts) in the metadata, written atomically."""
    meta = {
        "provenance": json.dumps(prov, default=str),
        "lang": imap.lang,
        "mode": imap.mode,
        "n_sequences": str(imap.n_sequences),
        "n_tokens": str(imap.n_tokens),
        "mean_loss": repr(imap.mean_loss),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({n: t.to(torch.float32).contiguous().cpu() for n, t in imap.importance.items()}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_importance(path: str | Path, dtype: torch.dtype = torch.float32) -> ImportanceMap:
    """Read a stored importance map back (float32 by default; bfloat16 halves the memory)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {n: handle.get_tensor(n).to(dtype) for n in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
    return ImportanceMap(
        meta["lang"], tensors, int(meta["n_sequences"]), int(meta["n_tokens"]), float(meta["mean_loss"]), meta["mode"]
    )


@register_probe("importance", paper="Zhang et al. 2024, Eq. 4", columns=IMPORTANCE_COLUMNS, version=3, family="regions")
def run_importance(
    backend: Backend,
    texts: Mapping[str, Sequence[str]],
    *,
    scope: Scope = "layers",
    mode: Mode = "sum_then_abs",
    group_size: int = GROUP_SIZE,
    batch_size: int = 8,
    max_tokens: int = 512,
    store: ResultsStore | None = None,
    data_files: Sequence[str | Path] = (),
    progress: bool = True,
) -> pd.DataFrame:
    """Importance per language (``texts``: language -> sentences), summarised per tensor.

    With ``store``, each language is one run: its map goes to ``<run>/importance.safetensors``
    and its summary to ``<run>/result.parquet``; a finished language is read back, not
    recomputed. The table's ``attrs["files"]`` maps each language to its safetensors file.
    """
    frames, files = [], {}
    for lang, sentences in texts.items():
        params = {
            "lang": lang,
            "scope": scope,
            "mode": mode,
            "group_size": group_size,
            "max_tokens": max_tokens,
            "n_texts": len(sentences),
        }  # not batch_size: it changes only memory use and speed
        run = (
            store.run(provenance("importance", params, backend.describe(), data_files), key="param") if store else None
        )
        if run is not None and run.finished and (run.folder / IMPORTANCE_FILE).is_file():
            frames.append(run.load())
            files[lang] = run.folder / IMPORTANCE_FILE
            continue
        imap = accumulate_importance(
            backend,
            sentences,
            lang=lang,
            scope=scope,
            mode=mode,
            group_size=group_size,
            batch_size=batch_size,
            max_tokens=max_tokens,
            progress=progress,
        )
        summary = summarise(imap, backend.parameter_scopes())
        if run is not None:
            save_importance(imap, run.folder / IMPORTANCE_FILE, run.prov)
            if not run.done_items("param"):  # an interrupted run may have stored the summary already
                run.append(summary)
            summary = run.finish()
            files[lang] = run.folder / IMPORTANCE_FILE
        frames.append(summary)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))
    table.attrs["files"] = files
    return table
