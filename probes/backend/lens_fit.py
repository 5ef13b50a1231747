"""Fitting the linear-shortcut and tuned lenses from a model's own activations on text.

* **Linear** (Din et al. 2023, Eq. 2): per layer ``l`` the least-squares affine map
  ``[h_l, 1] -> h_L`` (``h_L`` the last block's output), in closed form from second moments
  ``Z^T Z`` and ``Z^T Y`` (``Z = [h_l, 1]``) accumulated while streaming over the corpus, so memory
  stays O(d^2) per layer. The per-batch products run in float32, the sums and the solve in float64.
* **Tuned** (Belrose et al. 2023, Eq. 4-5): the same affine form trained with Adam to minimise
  ``KL(p_final || p_lens)`` summed over layers, the KL exact over the full vocabulary (one layer's
  ``tokens x vocab`` logits at a time), warm-started from the linear fit (or the identity).

Activations are read at every token of every text except each row's first, whose residual is
an attention sink with outlying norms (Gemma's ``<bos>``, SmolLM2's first token) and is never a
position the probes decode. The last layer's translator is the identity: there the lens is the
model's output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from probes.backend.base import Backend
from probes.backend.errors import PivotlensError
from probes.backend.lenses import Lens, identity_lens

TOKENS_PER_DIM = 10  # the closed form needs about 10 x d tokens per layer


class TooFewTokensError(PivotlensError):
    """A corpus too small for the closed-form fit at the model's width."""


def tokens_needed(d_model: int) -> int:
    return TOKENS_PER_DIM * d_model


def check_token_count(n_tokens: int, d_model: int, source: str) -> None:
    """Refuse a corpus with fewer than ``10 x d`` fitting tokens, naming the count needed."""
    needed = tokens_needed(d_model)
    if n_tokens < needed:
        raise TooFewTokensError(
            f"{source} gives {n_tokens} fitting tokens; a model of width d = {d_model} needs at least {needed} "
            f"(10 x d) for the closed-form fit: pass a larger --corpus, more --langs or a larger --tokens"
        )


def fitting_tokens(rows: Sequence[Sequence[int]]) -> int:
    """Tokens that contribute to a fit (every token but each row's first)."""
    return sum(max(0, len(r) - 1) for r in rows)


def activations(
    backend: Backend,
    rows: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "activations",
) -> Iterator[torch.Tensor]:
    """Per batch of token rows: the residuals after every block at every token but each row's
    first, ``[n_layers, n_tokens, d_model]``."""
    ordered = sorted((list(r) for r in rows if len(r) >= 2), key=len)
    with tqdm(
        total=fitting_tokens(ordered), desc=f"{desc} {backend.model_name}", unit="tok", disable=not progress
    ) as bar:
        for start in range(0, len(ordered), batch_size):
            enc = backend.encode(ordered[start : start + batch_size])
            seq = enc.input_ids.shape[1]
            resid = backend.residuals(enc, None, positions=torch.arange(seq))  # [L, B, seq, d]
            keep = enc.attention_mask.bool().clone()
            keep[torch.arange(enc.batch_size), enc.attention_mask.argmax(1)] = False  # each row's first token
            picked = resid[:, keep.to(resid.device)]
            bar.update(picked.shape[1])
            yield picked


@dataclass
class Moments:
    """Streaming second moments of ``Z = [h_l, 1]`` and ``Y = h_L`` for every layer."""

    zz: torch.Tensor  # [L, d+1, d+1] float64
    zy: torch.Tensor  # [L, d+1, d]
    y_sum: torch.Tensor  # [d]
    yy: float = 0.0  # sum ||y||^2
    n: int = 0

    @classmethod
    def empty(cls, n_layers: int, d_model: int) -> Moments:
        return cls(
            torch.zeros(n_layers, d_model + 1, d_model + 1, dtype=torch.float64),
            torch.zeros(n_layers, d_model + 1, d_model, dtype=torch.float64),
            y_sum=torch.zeros(d_model, dtype=torch.float64),
        )

    def add(self, acts: torch.Tensor) -> None:
        """Accumulate one batch ``[L, n, d]`` (the last layer is the regression target)."""
        acts = acts.float()  # the products run where the activations are (a GPU when there is one)
        z = torch.cat([acts, torch.ones(*acts.shape[:2], 1, device=acts.device)], dim=-1)  # [L, n, d+1]
        y = acts[-1]
        zt = z.transpose(1, 2)
        self.zz += (zt @ z).double().cpu()
        self.zy += (zt @ y).double().cpu()
        self.yy += float(y.double().square().sum())
        self.y_sum += y.double().sum(0).cpu()
        self.n += y.shape[0]

    def solve(self) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """``weight [L, d, d]``, ``bias [L, d]`` and per-layer R^2 of the least-squares fit; the
        last layer's map is the identity."""
        d = self.zy.shape[-1]
        sol = torch.linalg.solve(self.zz, self.zy)  # [L, d+1, d]
        sse = self.yy - 2 * (sol * self.zy).sum((1, 2)) + (sol * (self.zz @ sol)).sum((1, 2))
        sst = self.yy - float(self.y_sum.square().sum()) / self.n
        weight, bias = sol[:, :d].transpose(1, 2).float().contiguous(), sol[:, d].float().contiguous()
        weight[-1], bias[-1] = torch.eye(d), 0.0
        r2 = (1 - sse / sst).tolist()
        r2[-1] = 1.0
        return weight, bias, r2


def fit_linear(
    backend: Backend, rows: Sequence[Sequence[int]], *, name: str = "linear", batch_size: int = 8, progress: bool = True
) -> Lens:
    """Din et al.'s linear shortcut from the activations of ``rows`` (token ids), in closed form."""
    check_token_count(fitting_tokens(rows), backend.d_model, "the corpus")
    moments = Moments.empty(backend.n_layers, backend.d_model)
    with torch.no_grad():
        for acts in activations(backend, rows, batch_size=batch_size, progress=progress, desc="linear fit"):
            moments.add(acts)
    weight, bias, r2 = moments.solve()
    return Lens(
        "linear",
        name,
        weight.to(backend.device),
        bias.to(backend.device),
        {"tokens": moments.n, "metrics": {"r2_per_layer": r2}},
    )


def kl_bits(final_log_probs: torch.Tensor, lens_logits: torch.Tensor) -> torch.Tensor:
    """Per row ``KL(p_final || p_lens)`` in bits over the full vocabulary."""
    lens_log_probs = torch.log_softmax(lens_logits.float(), dim=-1)
    return (final_log_probs.exp() * (final_log_probs - lens_log_probs)).sum(-1) / math.log(2)


def layer_kl(backend: Backend, lens: Lens, acts: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Mean KL (bits) to the final distribution per layer of activations ``[L, n, d]``."""
    totals = torch.zeros(acts.shape[0], dtype=torch.float64)
    layers = list(range(acts.shape[0]))
    with torch.no_grad():
        for start in range(0, acts.shape[1], chunk):
            part = acts[:, start : start + chunk].to(backend.device)
            final = torch.log_softmax(backend.unembed(part[-1]).float(), -1)
            translated = lens.translate(layers, part)
            for layer in layers:
                totals[layer] += kl_bits(final, backend.unembed(translated[layer])).double().sum().cpu()
    return totals / acts.shape[1]


def fit_tuned(
    backend: Backend,
    rows: Sequence[Sequence[int]],
    *,
    init: Lens | None = None,
    name: str = "tuned",
    steps: int = 50,
    tokens_per_step: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    batch_size: int = 8,
    eval_tokens: int = 256,
    progress: bool = True,
) -> Lens:
    """Belrose et al.'s tuned lens: Adam on ``sum_l KL(p_final || p_lens,l)`` over minibatches of
    ``tokens_per_step`` tokens drawn (with ``seed``) from the activations of ``rows``, starting
    from ``init`` (the linear fit; the identity when ``None``). The record holds the mean KL per
    layer on the first ``eval_tokens`` training tokens before and after training."""
    torch.manual_seed(seed)
    with torch.no_grad():
        acts = torch.cat(
            list(activations(backend, rows, batch_size=batch_size, progress=progress, desc="tuned lens")), dim=1
        )
    n_layers, n_tokens, d_model = acts.shape
    start = init or identity_lens("tuned", name, n_layers, d_model)
    if start.weight is None or start.bias is None:
        raise PivotlensError(f"tuned lens {name!r}: the starting lens {start.name!r} has no translator to train")
    weight = torch.nn.Parameter(start.weight.detach().clone().float().to(backend.device))
    bias = torch.nn.Parameter(start.bias.detach().clone().float().to(backend.device))
    trained = Lens("tuned", name, weight, bias)
    probe = acts[:, :eval_tokens]
    before = layer_kl(backend, trained, probe)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with backend.frozen_except(()):  # only the translator trains
        for _ in tqdm(range(steps), desc=f"tuned lens {backend.model_name}", unit="step", disable=not progress):
            pick = torch.randint(n_tokens, (tokens_per_step,), generator=generator)
            batch = acts[:, pick].to(backend.device)
            with torch.no_grad():
                final = torch.log_softmax(backend.unembed(batch[-1]).float(), -1)
            optimizer.zero_grad()
            total = 0.0
            for layer in range(n_layers - 1):  # the last layer stays the identity
                translated = batch[layer] @ weight[layer].T + bias[layer]
                loss = kl_bits(final, backend.unembed(translated)).mean()
                loss.backward()  # one layer's tokens x vocab logits in memory at a time
                total += float(loss.detach())
            optimizer.step()
            losses.append(total / max(1, n_layers - 1))
    final_lens = Lens("tuned", name, weight.detach(), bias.detach())
    after = layer_kl(backend, final_lens, probe)
    final_lens.record = {
        "tokens": n_tokens,
        "seed": seed,
        "init": start.name if init is not None else "identity",
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "lr": lr,
        "eval_tokens": probe.shape[1],
        "metrics": {
            "train_kl_bits_before": before.tolist(),
            "train_kl_bits_after": after.tolist(),
            "loss_per_step": losses,
        },
    }
    return final_lens
