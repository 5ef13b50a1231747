"""The one interface probes use to reach a model: the :class:`Backend`.

Probes never touch hooks. They ask a backend for the primitives below, and two
implementations answer (transformer-lens 4 ``TransformerBridge`` and nnsight 0.8
``TransformersModel``, local or remote on NDIF).

Conventions fixed here, shared by both backends so that they agree:

* **Tokens.** Prompts are tokenized once, here, with the tokenizer's own default for special
  tokens (Gemma adds ``<bos>``, SmolLM2 adds none), so both backends see identical ids.
* **Padding.** Left padding, with explicit ``position_ids = cumsum(mask) - 1``, so position
  ``-1`` is every row's last real token and padded rows compute what unpadded rows compute.
  Rows that continue a cached shared prefix (:meth:`Backend.encode_after`) are right-padded
  instead, and ``-1`` is still each row's last real token.
* **Layers.** ``layer`` is the 0-based block index; the residual stream at ``layer`` is the
  output of block ``layer``; the lens at the last layer is the model's own output.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from probes.backend.architecture import ModelParts
from probes.backend.models import weights_origin
from probes.backend.scopes import ParameterScope, frozen_except, parameter_scopes
from probes.backend.tokensets import TokenSets

if TYPE_CHECKING:
    from typing import Any

    from transformers import Cache, PreTrainedModel

    from probes.backend.lenses import Lens


@dataclass(frozen=True)
class Encoded:
    """A batch of token ids, as every backend receives it: left-padded (:func:`encode_ids`), or
    right-padded after a shared prefix whose KV cache it carries (:meth:`Backend.encode_after`).

    With ``cache`` (the prefix's KV cache, one copy per row; the forward pass extends it, so such an
    ``Encoded`` is run once), ``attention_mask`` spans ``prefix + seq`` and ``position_ids``
    continue the prefix's; ``input_ids`` and the positions a probe reads hold the rows only.
    """

    input_ids: torch.Tensor  # [batch, seq]
    attention_mask: torch.Tensor  # [batch, seq], or [batch, prefix + seq] after a cached prefix
    position_ids: torch.Tensor  # [batch, seq]
    cache: Cache | None = None

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> Encoded:
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            position_ids=self.position_ids.to(device),
        )

    def model_inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }
        if self.cache is not None:
            inputs.update(cache=self.cache, use_cache=True)
        return inputs


def encode_ids(rows: Sequence[Sequence[int]], pad_id: int, *, right: bool = False) -> Encoded:
    """Left-pad already tokenized rows (the padding policy of pivotlens), or with ``right``
    right-pad them (rows after a cached prefix, :meth:`Backend.encode_after`)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            span = slice(0, len(row)) if right else slice(width - len(row), width)
            ids[i, span] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, span] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Encoded(ids, mask, positions)


def common_prefix(rows: Sequence[Sequence[int]]) -> list[int]:
    """The longest run of leading tokens every row shares, stopping one token short of the
    shortest row (each row keeps a token of its own to read out)."""
    shortest = min(len(row) for row in rows)
    length = 0
    while length < shortest - 1 and all(row[length] == rows[0][length] for row in rows):
        length += 1
    return list(rows[0][:length])


@dataclass(frozen=True)
class SharedPrefix:
    """Leading token ids that many rows share and, where the backend can reuse it, the model's KV
    cache of them (batch 1, never extended: :meth:`Backend.encode_after` copies it for each batch).
    ``cache`` is None where the backend re-encodes the prefix with every row instead
    (:attr:`Backend.reuses_prefix_cache`)."""

    ids: tuple[int, ...]
    cache: Cache | None


def resolve_positions(
    positions: Sequence[int] | torch.Tensor, enc: Encoded, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Absolute ``[n, k]`` indices, for the batch ``rows`` (all ``n`` of them when None), from
    either absolute indices or offsets from each row's end; a 2-D tensor gives a line per row.

    An offset ``-1`` is each row's last real token: the last column with left padding, the last
    unpadded column of a right-padded row (rows after a cached prefix).
    """
    seq = enc.input_ids.shape[1]
    picked = torch.arange(enc.batch_size) if rows is None else rows
    if isinstance(positions, torch.Tensor):
        pos = positions.to(torch.long)
        if pos.dim() == 1:
            pos = pos.unsqueeze(0).expand(len(picked), -1)
    else:
        pos = torch.as_tensor(list(positions), dtype=torch.long).unsqueeze(0).expand(len(picked), -1)
    real = enc.attention_mask[picked.to(enc.attention_mask.device), -seq:].bool().cpu()
    trailing_pads = real.flip(-1).long().cumsum(-1).eq(0).sum(-1)
    ends = seq - torch.where(real.any(-1), trailing_pads, 0)  # one past each row's last real token
    pos = torch.where(pos < 0, pos + ends.unsqueeze(-1), pos)
    if (pos < 0).any() or (pos >= seq).any():
        raise IndexError(f"positions {positions} fall outside the padded sequence of length {seq}")
    return pos


@dataclass(frozen=True)
class LensRequest:
    """What to keep of each per-layer next-token distribution (the rest is never stored).

    ``token_ids`` is ``[batch, n]`` (``-1`` pads a row): their probabilities are returned, and with
    ``log_probs`` their natural-log probabilities too (``0`` at padding), read off the
    log-softmax itself, so a product of many small probabilities can be taken as a sum of logs.
    ``rank_group`` (``[batch, n]`` bool) marks ids whose best rank is wanted: the number of
    tokens more probable than the group's most probable member (one pass over the vocabulary).
    ``top_k`` keeps the top tokens, ``full`` the whole distribution (memory heavy).
    """

    token_ids: torch.Tensor | None = None
    rank_group: torch.Tensor | None = None
    top_k: int = 0
    full: bool = False
    log_probs: bool = False
    energy_gram: torch.Tensor | None = None  # from Backend.unembedding_gram(); adds "energy"


@dataclass
class LensReadout:
    """Reduced logit-lens readout, each tensor indexed ``[layer, batch, position, ...]``."""

    layers: list[int]
    entropy_bits: torch.Tensor
    probs_at_ids: torch.Tensor | None = None
    log_probs_at_ids: torch.Tensor | None = None
    group_rank: torch.Tensor | None = None
    top_ids: torch.Tensor | None = None
    top_probs: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    energy: torch.Tensor | None = None

    def require(self, name: str) -> torch.Tensor:
        """The readout ``name`` (``"top_ids"``, ...), which the :class:`LensRequest` must have asked for."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"the lens request did not ask for {name!r}")
        return value


@dataclass(frozen=True)
class LensRead:
    """One readout of a lens pass (:meth:`Backend.lens_reads`): ``request`` at ``positions`` of the
    batch rows ``rows`` (all of them when None), in that order.

    ``positions`` are as for :meth:`Backend.lens`: absolute indices or offsets from the end (``-1``
    is each row's last token) shared by every row read, or a ``[len(rows), k]`` tensor, a line of
    positions per row read. ``request.token_ids`` and ``request.rank_group`` have a row per row read.
    """

    request: LensRequest
    positions: Sequence[int] | torch.Tensor = (-1,)
    rows: Sequence[int] | None = None


@dataclass(frozen=True)
class ReadPlan:
    """Where one forward pass must keep the residual stream to answer several :class:`LensRead`:
    ``columns`` (sorted absolute positions, kept in every row of the batch) and, for each read, the
    rows it reads and the index of each of its positions into ``columns``."""

    reads: list[LensRead]
    columns: torch.Tensor  # [u]
    rows: list[torch.Tensor]  # per read: [n]
    index: list[torch.Tensor]  # per read: [n, k] into columns

    @classmethod
    def of(cls, reads: Sequence[LensRead], enc: Encoded) -> ReadPlan:
        rows, positions = [], []
        for read in reads:
            picked = torch.arange(enc.batch_size) if read.rows is None else torch.as_tensor(list(read.rows))
            rows.append(picked)
            positions.append(resolve_positions(read.positions, enc, picked))  # [n, k]
        columns = torch.unique(torch.cat([p.reshape(-1) for p in positions]))  # sorted
        return cls(list(reads), columns, rows, [torch.searchsorted(columns, p) for p in positions])

    def readouts(
        self,
        layers: list[int],
        resid: torch.Tensor,
        unembed,
        vocab_size: int,
        translator: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[LensReadout]:
        """Each read's :func:`readout_layers` of the residuals ``[layer, batch, len(columns), d_model]``."""
        out = []
        for read, rows, index in zip(self.reads, self.rows, self.index):
            picked = resid[:, rows.to(resid.device)]  # [layer, n, u, d]
            where = index.to(resid.device)[None, :, :, None].expand(len(layers), -1, -1, resid.shape[-1])
            out.append(
                readout_layers(
                    layers, picked.gather(2, where), unembed, read.request, vocab_size, translator=translator
                )
            )
        return out


@dataclass(frozen=True)
class ChainReads:
    """Rows that teacher-force words after their contexts, and the read that scores every word's
    tokens in them (:func:`chain_reads`)."""

    rows: list[list[int]]
    read: LensRead

    def log_probs(self, readout: LensReadout) -> torch.Tensor:
        """``[layer, word]`` natural-log chain probability of each word, from :attr:`read`'s readout:
        the sum of its tokens' log-probabilities in float64 (position j scores token j)."""
        return readout.require("log_probs_at_ids").diagonal(dim1=2, dim2=3).double().sum(-1)


def chain_reads(
    contexts: Sequence[Sequence[int]], words: Sequence[Sequence[int]], *, share_rows: bool = False
) -> ChainReads:
    """The rows ``context + word[:-1]`` and the read of each word token's log-probability at the
    position before it (teacher forcing). With ``share_rows``, a word whose row begins another row
    is read in that one (causal attention: the tokens after it change nothing), so a context
    shared by several words runs once where their continuations extend one another."""
    sequences = [list(c) + list(w)[:-1] for c, w in zip(contexts, words)]
    rows: list[list[int]] = []
    row_of = [0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i])) if share_rows else range(len(sequences))
    for i in order:
        seq = sequences[i]
        found = next((r for r, row in enumerate(rows) if share_rows and row[: len(seq)] == seq), None)
        if found is None:
            rows.append(seq)
            found = len(rows) - 1
        row_of[i] = found
    ids = encode_ids(words, pad_id=-1).input_ids  # [word, width], left-padded with -1
    width = ids.shape[1]
    # word i's token j is read at len(context) - 1 + j: the last `width` positions of its own row,
    # counted from the end of the row that holds it; padding slots, read as 0, are kept inside that
    # row (a right-padded row after a cached prefix ends at its own length, not the batch's)
    last = torch.tensor([len(seq) - len(rows[r]) - 1 for seq, r in zip(sequences, row_of)])
    row_lengths = torch.tensor([len(rows[r]) for r in row_of])
    positions = torch.maximum(last.unsqueeze(1) + torch.arange(1 - width, 1), -row_lengths.unsqueeze(1))
    return ChainReads(rows, LensRead(LensRequest(token_ids=ids, log_probs=True), positions, row_of))


# Logits exponentiated at once when reducing (16 MB of float32): below glibc's 32 MB threshold for
# mapping fresh pages, so the buffer is reused from one slice to the next instead of page-faulted.
EXP_SLICE = 1 << 22
# Top-k reads the maximum of each block of this many logits, then only the k best blocks.
TOP_K_BLOCK = 64


def _exp_moments(shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum exp(s)`` and ``sum exp(s) s`` over the last axis, exponentiating a slice of rows at a time."""
    rows = shifted.reshape(-1, shifted.shape[-1])
    step = max(1, EXP_SLICE // rows.shape[1])
    totals, dots = [], []
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        exp = part.exp()
        totals.append(exp.sum(-1))
        dots.append(torch.einsum("rv,rv->r", exp, part))
    return torch.cat(totals).reshape(shifted.shape[:-1]), torch.cat(dots).reshape(shifted.shape[:-1])


def top_k(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``values.topk(k)`` over the last axis (values, indices), reading the whole axis once: the k
    largest values lie in the k blocks of :data:`TOP_K_BLOCK` values whose maxima are largest (each
    of them is at most its block's maximum), so only those blocks, and the values after the last
    whole block, are searched."""
    n = values.shape[-1]
    whole = n - n % TOP_K_BLOCK
    if k > whole // TOP_K_BLOCK:
        top = values.topk(k, dim=-1)
        return top.values, top.indices
    blocks = values[..., :whole].unflatten(-1, (whole // TOP_K_BLOCK, TOP_K_BLOCK))
    best = blocks.amax(-1).topk(k, dim=-1).indices  # [..., k] block numbers
    picked = blocks.gather(-2, best.unsqueeze(-1).expand(*best.shape, TOP_K_BLOCK)).flatten(-2)
    index = (best.unsqueeze(-1) * TOP_K_BLOCK + torch.arange(TOP_K_BLOCK, device=values.device)).flatten(-2)
    tail = torch.arange(whole, n, device=values.device).expand(*index.shape[:-1], n - whole)
    top, where = torch.cat([picked, values[..., whole:]], -1).topk(k, dim=-1)
    return top, torch.cat([index, tail], -1).gather(-1, where)


def reduce_logits(logits: torch.Tensor, request: LensRequest) -> dict[str, torch.Tensor]:
    """Reduce ``[batch, k, vocab]`` logits of one layer to what ``request`` asks for.

    Entropy is in bits over the full vocabulary (Wendler et al. 2024; docs/methods/latent-language.md). A rank is the
    number of tokens with strictly higher probability (0 = top-1).

    On a CPU a pass over the logits costs a good part of the unembedding's matrix product, so the
    distribution itself is made only when ``full`` asks for it. The logits are shifted in place by
    their maximum (float32 logits are overwritten: the caller hands them over), exponentiated once,
    a slice of rows at a time, and everything is read off the shifted logits ``s`` and
    ``Z = sum exp(s)``: ``log p = s - log Z`` and ``H = log Z - sum exp(s) s / Z`` (nats, then bits).
    """
    shifted = logits.float()
    shifted -= shifted.amax(-1, keepdim=True)
    total, dot = _exp_moments(shifted)
    log_total = total.log().unsqueeze(-1)
    out = {"entropy_bits": (log_total.squeeze(-1) - dot / total) / math.log(2)}
    if request.token_ids is not None:
        ids = request.token_ids.to(logits.device)
        safe = ids.clamp(min=0).unsqueeze(1).expand(-1, shifted.shape[1], -1)  # [b, k, n]
        at_ids = shifted.gather(-1, safe)  # shifted logits of the ids
        valid = (ids >= 0).unsqueeze(1)
        out["probs_at_ids"] = torch.where(valid, (at_ids - log_total).exp(), torch.zeros_like(at_ids))
        if request.log_probs:
            out["log_probs_at_ids"] = torch.where(valid, at_ids - log_total, torch.zeros_like(at_ids))
        if request.rank_group is not None:
            member = (request.rank_group.to(logits.device) & (ids >= 0)).unsqueeze(1)
            best = torch.where(member, at_ids, torch.full_like(at_ids, -math.inf)).max(-1, keepdim=True).values
            out["group_rank"] = (shifted > best).sum(-1)
    if request.top_k:
        values, out["top_ids"] = top_k(shifted, request.top_k)
        out["top_probs"] = (values - log_total).exp()
    if request.full:
        out["probs"] = (shifted - log_total).exp()
    return out


def token_energy(resid: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """Wendler et al.'s token energy (their Cloze notebook): ``sqrt(mean_i (Ũ_i·ĥ)²) / avgUU`` with ĥ the unit
    residual, written with the Gram matrix ``G = ŨᵀŨ/V`` as ``sqrt(ĥᵀGĥ) / ||G||_F``."""
    unit = resid.float() / resid.float().norm(dim=-1, keepdim=True)
    return ((unit @ gram) * unit).sum(-1).clamp(min=0).sqrt() / gram.norm()


def translate_residuals(
    translator: tuple[torch.Tensor, torch.Tensor] | None, layers: Sequence[int], resid: torch.Tensor
) -> torch.Tensor:
    """``resid`` ``[len(layers), ..., d]`` -> ``W_l h + b_l`` per layer (unchanged without a translator)."""
    if translator is None:
        return resid
    index = torch.as_tensor(list(layers), dtype=torch.long, device=translator[0].device)
    weight = translator[0].index_select(0, index).to(resid.device, resid.dtype)
    bias = translator[1].index_select(0, index).to(resid.device, resid.dtype)
    flat = resid.reshape(len(layers), -1, resid.shape[-1])
    return torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2)).reshape(resid.shape)


def readout_layers(
    layers: list[int],
    resid: torch.Tensor,
    unembed,
    request: LensRequest,
    vocab_size: int,
    max_logits: int = 1 << 26,
    translator: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LensReadout:
    """Everything a lens request asks of residuals ``[layer, batch, k, d_model]``.

    ``translator`` (a lens' ``(weight [n_layers, d, d], bias [n_layers, d])``, see
    :mod:`probes.backend.lenses`) maps each chunk of layers before the final transform
    ``unembed``; ``None`` (the logit lens) leaves the residual as it is.

    Layers are unembedded together, as one matrix product over ``layer x batch`` rows (several
    times faster on a CPU than one product per layer), in chunks of at most ``max_logits``
    logits (256 MB in float32), so memory never holds layers x vocabulary at once.
    """
    n_layers, batch, k, d_model = resid.shape
    step = max(1, max_logits // (vocab_size * batch * k))
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, n_layers, step):
        chunk = translate_residuals(translator, layers[start : start + step], resid[start : start + step])
        flat = chunk.reshape(-1, k, d_model)
        repeated = replace(
            request,
            token_ids=None if request.token_ids is None else request.token_ids.repeat(len(chunk), 1),
            rank_group=None if request.rank_group is None else request.rank_group.repeat(len(chunk), 1),
        )
        out = reduce_logits(unembed(flat), repeated)
        if request.energy_gram is not None:
            out["energy"] = token_energy(flat, request.energy_gram.to(flat.device))
        parts.append({key: value.reshape(len(chunk), batch, *value.shape[1:]) for key, value in out.items()})
    return LensReadout(layers=layers, **{key: torch.cat([p[key] for p in parts]) for key in parts[0]})


@dataclass
class LossGrads:
    """Mean next-token loss of a batch and the gradient of every requested parameter."""

    loss: float
    grads: dict[str, torch.Tensor]
    n_tokens: int


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction; ``labels`` aligned with the inputs, -100 ignored."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
    )


@dataclass
class StepStats:
    """Per generated step, the statistics of the model's next-token distribution."""

    entropy_bits: list[torch.Tensor] = field(default_factory=list)
    nucleus_size: list[torch.Tensor] = field(default_factory=list)
    top_ids: list[torch.Tensor] = field(default_factory=list)
    top_probs: list[torch.Tensor] = field(default_factory=list)


class _StepRecorder(LogitsProcessor):
    """Records statistics of the raw next-token distribution; leaves the scores unchanged.

    It runs before temperature and top-p (transformers puts user processors first), so the
    recorded distribution is the model's own (nucleus size: Marchisio et al. 2024, Sec. 5, Table 7).
    """

    def __init__(self, nucleus_p: float, top_k: int) -> None:
        self.nucleus_p, self.top_k, self.stats = nucleus_p, top_k, StepStats()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(scores.float(), dim=-1)
        probs = log_probs.exp()
        self.stats.entropy_bits.append((-(probs * log_probs).sum(-1) / math.log(2)).cpu())
        self.stats.nucleus_size.append(nucleus_size(probs, self.nucleus_p).cpu())
        top = probs.topk(self.top_k, dim=-1)
        self.stats.top_ids.append(top.indices.cpu())
        self.stats.top_probs.append(top.values.cpu())
        return scores


def nucleus_size(probs: torch.Tensor, p: float, candidates: int = 1024) -> torch.Tensor:
    """Smallest k whose top-k probabilities sum to at least ``p`` (Marchisio et al. 2024, Table 7). Looks at the top
    ``candidates`` tokens first and sorts the whole vocabulary only for rows that need more."""
    top = probs.topk(min(candidates, probs.shape[-1]), dim=-1).values.cumsum(-1)
    size = (top < p).sum(-1) + 1
    short = top[..., -1] < p
    if short.any():
        full = probs[short].sort(dim=-1, descending=True).values.cumsum(-1)
        size[short] = (full < p).sum(-1) + 1
    return size


def _along_beams(stat: torch.Tensor, beam_indices: torch.Tensor) -> torch.Tensor:
    """Per-step statistics recorded for every beam row ``[batch * beams, steps, ...]`` -> those of
    the rows each returned sequence came from, ``[batch, steps, ...]`` (index -1: finished)."""
    steps = torch.arange(beam_indices.shape[1]).expand_as(beam_indices)
    picked = stat[beam_indices.clamp(min=0), steps]
    done = beam_indices < 0
    if done.any():
        picked[done] = torch.nan if picked.is_floating_point() else -1
    return picked


@dataclass
class Generation:
    """Generated ids (prompt excluded) and per-step statistics, each ``[batch, steps]``; the
    statistics are None when generation ran without them (``statistics=False``)."""

    new_ids: torch.Tensor
    entropy_bits: torch.Tensor | None = None
    nucleus_size: torch.Tensor | None = None
    top_ids: torch.Tensor | None = None
    top_probs: torch.Tensor | None = None


class Backend(ABC):
    """The primitives every probe needs, independent of the hooking library.

    Attributes: ``model_name`` (display name), ``source`` (folder or hub id),
    ``weights_hash`` (provenance fingerprint), ``tokenizer``, ``config`` (the Hugging Face
    config), ``n_layers``, ``d_model``, ``vocab_size``, ``device``.
    """

    name: str

    def __init__(self, hf_model, tokenizer, *, model_name: str, source: str, weights_hash: str) -> None:
        self.tokenizer = tokenizer
        self.model_name, self.source, self.weights_hash = model_name, source, weights_hash
        self.parts = ModelParts.locate(hf_model)
        if hf_model.device.type != "meta":  # a remote (NDIF) model has no weights here to check
            self.parts.verify(hf_model)
        self.config = config = hf_model.config
        self.n_layers = int(config.num_hidden_layers)
        self.d_model = int(config.hidden_size)
        self.vocab_size = int(self.parts.head(hf_model).weight.shape[0])
        self.device = next(hf_model.parameters()).device
        self.dtype = next(hf_model.parameters()).dtype
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    # ---- tokens -------------------------------------------------------------------------
    @cached_property
    def token_sets(self) -> TokenSets:
        """The word -> token-id sets of this backend's tokenizer, built once (reading the vocabulary
        of a 50k-token tokenizer takes a tenth of a second)."""
        return TokenSets(self.tokenizer)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def encode(self, prompts: Sequence[str] | Sequence[Sequence[int]]) -> Encoded:
        """Tokenize (strings) or take token rows as given, and left-pad them."""
        rows = [self.tokenize(p) if isinstance(p, str) else list(p) for p in prompts]
        return encode_ids(rows, self.pad_id).to(self.device)

    # Where the model runs here, a prefix's KV cache is a local object both hooking libraries hand to it.
    reuses_prefix_cache = True

    def shared_prefix(self, ids: Sequence[int]) -> SharedPrefix:
        """Encode the prefix ``ids`` once and keep the model's KV cache of it, for
        :meth:`encode_after` to reuse across batches of rows that all start with it (few-shot
        prompts sharing their instruction and demonstrations). The cache is the Hugging Face model's
        own (``DynamicCache``; for Gemma its sliding-window layers keep only the window), made by
        its decoder, which both backends hook; nothing changes in what a readout computes. Without
        :attr:`reuses_prefix_cache` the prefix is only remembered and re-encoded with every row."""
        ids = tuple(int(i) for i in ids)
        if not ids or not self.reuses_prefix_cache:
            return SharedPrefix(ids, None)
        decoder = self._hf_model().get_decoder()
        with torch.no_grad():
            out = decoder(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        return SharedPrefix(ids, out.cache)

    def encode_after(self, prefix: SharedPrefix, rows: Sequence[Sequence[int]]) -> Encoded:
        """The batch ``prefix.ids + row`` for each row, as :meth:`lens` and :meth:`residuals` take it.

        With the prefix's cache, only the rows are run: right-padded (so that every real token
        sits at its own position's index, which a sliding-window mask counts in), the attention
        mask spanning prefix and row, positions continuing the prefix's, and a copy of the cache
        repeated over the batch. Offsets such as ``-1`` count from each row's end as usual;
        absolute positions index the rows alone. Without a cache (:attr:`reuses_prefix_cache`
        false, or an empty prefix) it is ``encode([prefix.ids + row, ...])``: the uncached
        computation itself."""
        if prefix.cache is None:
            return self.encode([list(prefix.ids) + list(row) for row in rows])
        if any(len(row) == 0 for row in rows):
            raise ValueError("every row needs at least one token after the shared prefix")
        batch, n_prefix = encode_ids(rows, self.pad_id, right=True), len(prefix.ids)
        mask = torch.cat([torch.ones((len(rows), n_prefix), dtype=torch.long), batch.attention_mask], dim=1)
        positions = (n_prefix + torch.arange(batch.input_ids.shape[1])).repeat(len(rows), 1)
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(len(rows))
        return Encoded(batch.input_ids, mask, positions, cache).to(self.device)

    def check_layers(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(self.n_layers))
        out = [layer + self.n_layers if layer < 0 else layer for layer in layers]
        bad = [layer for layer in out if not 0 <= layer < self.n_layers]
        if bad:
            raise IndexError(f"layers {bad} do not exist: {self.model_name} has blocks 0..{self.n_layers - 1}")
        return out

    # ---- primitives ---------------------------------------------------------------------
    @abstractmethod
    def residuals(
        self, enc: Encoded, layers: Sequence[int] | None = None, positions: Sequence[int] | torch.Tensor = (-1,)
    ) -> torch.Tensor:
        """Residual stream after the given blocks at the given positions: ``[layer, batch, k, d_model]``."""

    def lens(
        self,
        enc: Encoded,
        request: LensRequest,
        layers: Sequence[int] | None = None,
        positions: Sequence[int] | torch.Tensor = (-1,),
        *,
        lens: Lens | None = None,
    ) -> LensReadout:
        """Each layer's residual through ``lens``' translator (none for the logit lens), then the
        model's own final transform (:meth:`unembed`), reduced as ``request`` says."""
        return self.lens_reads(enc, [LensRead(request, positions)], layers, lens=lens)[0]

    @abstractmethod
    def lens_reads(
        self, enc: Encoded, reads: Sequence[LensRead], layers: Sequence[int] | None = None, *, lens: Lens | None = None
    ) -> list[LensReadout]:
        """What :meth:`lens` reads, for several reads (each its own request, rows and positions) of
        one forward pass: the residual stream is kept once at every position some read needs
        (:class:`ReadPlan`), then each read is reduced on its own, so each readout is what
        :meth:`lens` returns for that read alone."""

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """The model's final transform of residual vectors ``[..., d_model]``: final norm,
        unembedding, and the logit scaling or soft-cap the model applies
        (:class:`probes.backend.architecture.FinalTransform`)."""
        return self.parts.logits(self._hf_model(), resid)

    def chain_log_probs(
        self, contexts: Sequence[Sequence[int]], words: Sequence[Sequence[int]], *, lens: Lens | None = None
    ) -> torch.Tensor:
        """``[layer, batch]`` natural-log chain probability of each word's tokens after its context:
        the sum over the word's tokens of each token's lens log-probability, the earlier tokens of
        the word appended to the context (teacher forcing, :func:`chain_reads`). Summed in log space
        (float64), so a long chain of small probabilities stays finite where their float32 product
        would underflow to 0."""
        chains = chain_reads(contexts, words)
        return chains.log_probs(self.lens_reads(self.encode(chains.rows), [chains.read], lens=lens)[0])

    def _loss(self, enc: Encoded, labels: torch.Tensor) -> torch.Tensor:
        """Differentiable mean next-token loss of a batch: the model's own logits."""
        return lm_loss(self._hf_model()(**enc.model_inputs(), use_cache=False).logits, labels)

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Trainable parameters (``requires_grad``) under their Hugging Face names."""
        return {n: p for n, p in self.named_parameters().items() if p.requires_grad}

    def loss_and_grads(self, enc: Encoded, labels: torch.Tensor, params: Sequence[str] | None = None) -> LossGrads:
        """Mean next-token loss (``labels`` aligned with inputs, -100 ignored) and its gradient
        for the named parameters (Hugging Face names; all trainable ones when ``None``)."""
        named = self.trainable_parameters()
        wanted = list(named) if params is None else list(params)
        missing = [n for n in wanted if n not in named]
        if missing:
            raise KeyError(f"unknown parameters {missing[:3]}; use Hugging Face names such as {next(iter(named))!r}")
        for p in named.values():
            p.grad = None
        loss = self._loss(enc, labels.to(enc.input_ids.device))
        loss.backward()
        grads = {
            n: grad.detach().clone() if (grad := named[n].grad) is not None else torch.zeros_like(named[n])
            for n in wanted
        }
        for p in named.values():
            p.grad = None
        return LossGrads(loss.detach().item(), grads, int((labels[:, 1:] != -100).sum()))

    @abstractmethod
    def _hf_model(self) -> PreTrainedModel:
        """The underlying ``transformers`` model (for generation)."""

    def unembedding_gram(self, chunk: int = 16384) -> torch.Tensor:
        """``G = ŨᵀŨ / V`` (``[d_model, d_model]``), Ũ the unit-normalised rows of the unembedding
        with the final norm's weight folded in (Wendler et al. 2024, token energy; RMS-norm models).
        The effective norm weight is read as ``norm(1)``, which folds in Gemma's ``1 + w``; all-zero
        rows (a padding embedding tied to the head) are left out of V."""
        model = self._hf_model()
        weight = self.parts.head(model).weight
        with torch.no_grad():
            ones = torch.ones(self.d_model, device=weight.device, dtype=weight.dtype)
            gamma = self.parts.final_norm(model)(ones).float()
            gram = torch.zeros(self.d_model, self.d_model, device=weight.device)
            n_rows = 0
            for start in range(0, weight.shape[0], chunk):
                rows = weight[start : start + chunk].float() * gamma
                norms = rows.norm(dim=-1, keepdim=True)
                rows = rows[norms[:, 0] > 0] / norms[norms[:, 0] > 0]  # all-zero rows (e.g. padding) are no tokens
                gram += rows.T @ rows
                n_rows += rows.shape[0]
        return gram / n_rows

    def grad_stream(
        self,
        enc: Encoded,
        labels: torch.Tensor,
        params: Sequence[str] | None = None,
        *,
        layer: int | None = None,
        label_smoothing: float = 0.0,
        reduction: str = "token_mean",
    ):
        """Gradient of the next-token loss read out after block ``layer`` (``None``: the model's
        output) for the named parameters, as a :class:`probes.backend.gradients.GradStream` that
        hands out one tensor at a time (PROM's pivoted loss and gradient cosine; plain torch on
        the local model, so both backends give the same numbers)."""
        from probes.backend.gradients import stream_grads

        return stream_grads(
            self._hf_model(),
            self.trainable_parameters(),
            enc.model_inputs(),
            labels.to(enc.input_ids.device),
            params,
            layer=layer,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def named_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Parameters under their Hugging Face names."""
        return dict(self._hf_model().named_parameters())

    def parameter_scopes(self) -> dict[str, ParameterScope]:
        """Block (``layer``), module and group of every parameter, under its Hugging Face name,
        read from the module tree as it is now (:mod:`probes.backend.scopes`)."""
        return parameter_scopes(self._hf_model(), self.parts)

    def frozen_except(self, names: Collection[str]) -> AbstractContextManager[None]:
        """``with backend.frozen_except(names): ...``: only the named parameters require
        gradients inside (a backward pass then spends nothing on the others); every
        ``requires_grad`` flag is restored on exit, even after an error."""
        return frozen_except(self.named_parameters(), names)

    def generate(
        self,
        enc: Encoded,
        *,
        max_new_tokens: int = 100,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        num_beams: int = 1,
        nucleus_p: float = 0.75,
        top_k: int = 5,
        seed: int | None = None,
        statistics: bool = True,
    ) -> Generation:
        """Generate and record per step the entropy (bits), nucleus size at ``nucleus_p`` and
        top tokens of the model's raw next-token distribution. With beam search
        (``num_beams > 1``) the statistics are those of the distribution each returned token was
        chosen from: the step's row of the beam that the final sequence passed through
        (``beam_indices``); steps after a sequence finished hold NaN / -1. With
        ``statistics=False`` only the ids are returned: plain decoding, for callers that read no
        statistics (the recorder's full-vocabulary softmax and sort cost time at every step)."""
        if seed is not None:
            torch.manual_seed(seed)
        recorder = _StepRecorder(nucleus_p, top_k)
        processors = LogitsProcessorList([recorder] if statistics else [])
        # (transformers types generate() and its result for its own checker, not for a PreTrainedModel)
        model: Any = self._hf_model()
        kwargs = {"temperature": temperature, "top_p": top_p} if do_sample else {}
        if num_beams > 1:
            kwargs.update(num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
        with torch.no_grad():
            out = model.generate(
                input_ids=enc.input_ids,
                attention_mask=enc.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                logits_processor=processors,
                pad_token_id=self.pad_id,
                **kwargs,
            )
        sequences = out.sequences if num_beams > 1 else out
        new_ids = sequences[:, enc.input_ids.shape[1] :].cpu()
        if not statistics:
            return Generation(new_ids)
        s = recorder.stats
        stats = [
            torch.stack(s.entropy_bits, 1),
            torch.stack(s.nucleus_size, 1),
            torch.stack(s.top_ids, 1),
            torch.stack(s.top_probs, 1),
        ]
        if num_beams > 1:
            stats = [_along_beams(stat, out.beam_indices[:, : new_ids.shape[1]].cpu()) for stat in stats]
        return Generation(new_ids, *stats)

    def describe(self) -> dict[str, object]:
        """Provenance of the model for result metadata."""
        return {
            "model": self.model_name,
            "model_source": weights_origin(self.source, getattr(self.config, "_commit_hash", None)),
            "weights_hash": self.weights_hash,
            "backend": self.name,
            "n_layers": self.n_layers,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }
