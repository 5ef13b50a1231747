"""How well each lens reads each layer: KL to the model's final distribution and top-1 agreement
(Belrose et al. 2023, "Eliciting Latent Predictions with the Tuned Lens", Fig. 1 and Sec. 4).

For every token of held-out text (each row's first token excepted, as in the fits of
:mod:`probes.backend.lens_fit`) and every layer ``l``: ``KL(p_final || p_lens,l)`` in bits over
the full vocabulary, and whether the lens' top-1 token is the model's own top-1 token. The
residuals of a batch are read once and decoded by every lens, one layer at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from probes.backend import Backend
from probes.backend.lens_fit import activations, kl_bits
from probes.backend.lenses import Lens
from probes.registry import register_probe

LENS_EVAL_COLUMNS = {
    "lens": "lens name: logit, linear, tuned, linear-en, ... (probes/backend/lenses.py)",
    "lens_fit": "fit id of the lens (sha256 of its tensors; empty for the logit lens)",
    "lang": "language of the held-out text",
    "layer": "0-based block index; the last layer is the model's own output",
    "kl_bits": "mean KL(final || lens) over the language's tokens, in bits over the full vocabulary",
    "top1_agreement": "share of tokens where the lens' top-1 token is the model's top-1 token",
    "n_tokens": "tokens the means are over",
}


def _batch_sums(backend: Backend, lenses: Sequence[Lens], acts: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[lens, layer, 2]``: summed KL bits and top-1 matches over the tokens of ``acts`` ``[L, n, d]``."""
    layers = list(range(acts.shape[0]))
    sums = torch.zeros(len(lenses), len(layers), 2, dtype=torch.float64)
    for start in range(0, acts.shape[1], chunk):
        part = acts[:, start : start + chunk]
        final = torch.log_softmax(backend.unembed(part[-1]).float(), -1)
        final_top = final.argmax(-1)
        for li, lens in enumerate(lenses):
            translated = lens.translate(layers, part)
            for layer in layers:
                logits = backend.unembed(translated[layer])
                sums[li, layer, 0] += kl_bits(final, logits).double().sum().cpu()
                sums[li, layer, 1] += (logits.argmax(-1) == final_top).sum().cpu()
    return sums


@register_probe(
    "lens-eval",
    paper="Belrose et al. 2023, Fig. 1 (per-layer KL to the final distribution)",
    columns=LENS_EVAL_COLUMNS,
    family="lens",
)
def lens_eval(
    backend: Backend,
    lenses: Sequence[Lens],
    rows: Mapping[str, Sequence[Sequence[int]]],
    *,
    batch_size: int = 8,
    chunk: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """Per lens, language (``rows``: token rows per language) and layer: mean KL in bits to the
    model's final distribution and top-1 agreement (columns in ``LENS_EVAL_COLUMNS``)."""
    records = []
    with torch.no_grad():
        for lang, lang_rows in rows.items():
            sums = torch.zeros(len(lenses), backend.n_layers, 2, dtype=torch.float64)
            n_tokens = 0
            for acts in activations(
                backend, lang_rows, batch_size=batch_size, progress=progress, desc=f"lens-eval {lang}"
            ):
                sums += _batch_sums(backend, lenses, acts, chunk)
                n_tokens += acts.shape[1]
            for li, lens in enumerate(lenses):
                for layer in range(backend.n_layers):
                    records.append(
                        {
                            "lens": lens.name,
                            "lens_fit": lens.fit_id,
                            "lang": lang,
                            "layer": layer,
                            "kl_bits": float(sums[li, layer, 0] / n_tokens),
                            "top1_agreement": float(sums[li, layer, 1] / n_tokens),
                            "n_tokens": n_tokens,
                        }
                    )
    return pd.DataFrame.from_records(records, columns=list(LENS_EVAL_COLUMNS))
