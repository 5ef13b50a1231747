"""The lens explorer: what every layer would predict at every position of one prompt.

The view of nostalgebraist's logit-lens pictures and tuned-lens's prediction trajectories, with
the latent-language colouring of Wendler et al. 2024 (docs: ``notebooks/explore.ipynb``). Built on
:meth:`Backend.lens <probes.backend.base.Backend.lens>` alone: each layer's next-token
distribution is reduced to its top-k, entropy and the probabilities of two words inside the
backend, so memory holds top-k per cell, never layers x positions x vocabulary.

The two words are scored as the lens probe scores them (:mod:`probes.lens`): by their prefix token
sets where each set identifies its word among its language's word list, else both by the chain
probability of the whole word (:meth:`Backend.chain_log_probs <probes.backend.base.Backend.chain_log_probs>`),
as on SmolLM2, whose byte-level vocabulary has no token that spells 云 whole. The grid and the
chains are read from one forward pass (:meth:`Backend.lens_reads <probes.backend.base.Backend.lens_reads>`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from analyses.figures.explore import COLORS, explorer_figure, explorer_page
from probes.backend import Backend, LensRequest
from probes.backend.base import LensRead, chain_reads
from probes.backend.errors import PromptError, TokenizerVocabularyError, UnknownLensError
from probes.backend.languages import get_language
from probes.backend.lenses import Lens, load_lens
from probes.backend.store import write_text_atomic
from probes.backend.tokensets import TokenSets, WordUnit, scoring_kind
from probes.inputs.words import CONCEPTS, load_concepts
from probes.language_id import token_language

EXPLORE_COLUMNS = {
    "layer": "0-based block index; the last layer is the model's own output",
    "position": "0-based index of the prompt token (special tokens such as <bos> included)",
    "token": "the prompt's token at this position, decoded",
    "top_tokens": "the lens's top-k next tokens at this layer and position, decoded, most probable first",
    "top_probs": "their probabilities, in the same order",
    "entropy_bits": "entropy of the layer's next-token distribution over the full vocabulary, in bits",
    "p_<latent>": "probability of the latent-language word, same rule as p_target (NaN without one)",
    "p_target": "probability of the target word (NaN without a target): in every cell the sum over its prefix "
    "token set (Wendler et al.), or, where a set does not identify its word, the chain probability of the whole "
    "word teacher-forced after the last position shown (summed in log space), at that position only (NaN elsewhere)",
    "token_lang": "language of the top-1 token: ISO 639-1 code, a script name when fastText cannot tell, "
    "or 'other' (no letters, or several scripts)",
}

# The lenses the explorer offers (the widget's dropdown, the CLI's --lens): the logit lens and the
# fitted lenses of ``pivotlens fit-lens`` (a lens not fitted for the model names that command).
LENSES: tuple[str, ...] = ("logit", "linear", "linear-en", "tuned")
# Logits one Backend.lens call may hold at once (128 MB of float32): long prompts are read in
# windows of positions, so the peak does not grow with the prompt.
MAX_LOGITS = 1 << 25


def available_lenses() -> tuple[str, ...]:
    """Every lens the explorer can draw (``logit`` first)."""
    return LENSES


def check_request(prompt: str, lens: str, color: str) -> None:
    """The checks that need no model: an empty prompt, an unknown lens or colouring."""
    if not prompt.strip():
        raise PromptError("the prompt is empty; pass the text whose layers you want to see")
    if lens not in available_lenses():
        raise UnknownLensError(f"unknown lens {lens!r}; available: {', '.join(available_lenses())}")
    if color not in COLORS:
        raise PromptError(f"unknown colouring {color!r}; use one of {', '.join(COLORS)}")


def context_length(backend: Backend) -> int | None:
    """The longest input the model was built for (``max_position_embeddings``), if it says."""
    value = getattr(backend.config, "max_position_embeddings", None)
    return int(value) if value else None


def _prompt_ids(backend: Backend, prompt: str) -> list[int]:
    ids = backend.tokenize(prompt)
    limit = context_length(backend)
    if limit is not None and len(ids) > limit:
        raise PromptError(
            f"the prompt is {len(ids)} tokens long but {backend.model_name} reads at most {limit}; shorten it"
        )
    return ids


def latent_word_of(target: str, latent: str, concepts: pd.DataFrame) -> str | None:
    """The latent-language word of the concept whose word (in any language) is ``target``."""
    if latent not in concepts.columns:
        return None
    hits = concepts[(concepts.drop(columns="concept") == target.strip()).any(axis=1)]
    return None if hits.empty else str(hits.iloc[0][latent])


def word_unit(sets: TokenSets, concepts: pd.DataFrame, word: str, lang: str | None = None) -> WordUnit:
    """The lens probe's unit of ``word``: decided among the whole word list of its language (``lang``,
    else the first language of ``concepts`` that has the word), or alone when the list lacks it."""
    columns = [lang] if lang is not None else [c for c in concepts.columns if c != "concept"]
    for column in columns:
        if column in concepts.columns and word in set(concepts[column]):
            return sets.units(concepts[column])[word]
    return sets.units([word])[word]


@dataclass(frozen=True)
class TrackedWord:
    """A word whose probability the explorer tracks: its table column and the token ids it is
    scored by (its prefix set, or the chain that spells the whole word)."""

    column: str
    ids: list[int]


def _tracked(sets: TokenSets, words: dict[str, tuple[WordUnit, str]]) -> tuple[str, list[TrackedWord]]:
    """The scoring kind shared by all ``words`` (column -> (unit, role)) and their token ids; a word
    the tokenizer cannot write (its chain does not read back as the word) is refused."""
    kind = scoring_kind(*(unit for unit, _ in words.values()))
    tracked = []
    for column, (unit, role) in words.items():
        if kind == "prefix":
            ids = sorted(unit.prefix_set)
        else:
            ids = sets.chain(unit.word)
            spelled = sets.tokenizer.decode(ids)
            if spelled != unit.word:
                raise TokenizerVocabularyError(
                    f"the tokenizer cannot spell the {role} word {unit.word!r} (its tokens read {spelled!r}); pick a "
                    "word in a script this model's vocabulary covers"
                )
        tracked.append(TrackedWord(column, ids))
    return kind, tracked


def _positions(n_tokens: int, positions: Sequence[int] | range | None) -> list[int]:
    if positions is None:
        return list(range(n_tokens))
    out = sorted({p + n_tokens if p < 0 else p for p in positions})
    bad = [p for p in out if not 0 <= p < n_tokens]
    if bad or not out:
        raise PromptError(
            f"positions {bad or 'none'} are not in the prompt's 0..{n_tokens - 1}; pick positions inside it"
        )
    return out


def _grid(
    backend: Backend,
    ids: list[int],
    positions: list[int],
    top_k: int,
    kind: str,
    words: list[TrackedWord],
    reader: Lens,
) -> dict:
    """Entropy, top-k ``[layer, position, ...]`` and each tracked word's probability ``[layer, position]``
    through the Backend's lens (``reader``: the logit lens or a fitted one, :func:`load_lens`), all read
    from one forward pass (:meth:`Backend.lens_reads <probes.backend.base.Backend.lens_reads>`).

    A prefix-scored word is the sum over its set in every cell. A chain-scored word is the chain of the
    whole word after the last position shown (:func:`chain_reads`), NaN at the other positions, which
    would each need a pass of their own: the pass runs the prompt up to that position followed by the
    chains' tokens, and causal attention leaves the prompt's positions as they are without them.
    Positions are read in windows, so the logits held at once stay under :data:`MAX_LOGITS`."""
    context = ids[: positions[-1] + 1]
    prefix_ids = [i for word in words for i in word.ids] if kind == "prefix" else []
    chains = chain_reads([context] * len(words), [w.ids for w in words], share_rows=True) if kind == "chain" else None
    rows = [context] if chains is None else chains.rows
    request = LensRequest(token_ids=torch.tensor([prefix_ids]) if prefix_ids else None, top_k=top_k)
    window = max(1, MAX_LOGITS // backend.vocab_size)
    grid_reads = [  # all in the first row, which starts with the context; offsets from its end
        LensRead(request, [p - len(rows[0]) for p in positions[i : i + window]], rows=[0])
        for i in range(0, len(positions), window)
    ]
    chain_read = [] if chains is None else [chains.read]
    readouts = backend.lens_reads(backend.encode(rows), grid_reads + chain_read, lens=reader)
    parts = readouts[: len(grid_reads)]
    grid = {
        "entropy_bits": torch.cat([p.entropy_bits[:, 0] for p in parts], 1),
        "top_ids": torch.cat([p.require("top_ids")[:, 0] for p in parts], 1),
        "top_probs": torch.cat([p.require("top_probs")[:, 0] for p in parts], 1),
    }
    if prefix_ids:
        probs = torch.cat([p.require("probs_at_ids")[:, 0] for p in parts], 1)  # [layer, position, n]
        bounds = np.cumsum([0] + [len(word.ids) for word in words])
        for word, start, stop in zip(words, bounds[:-1], bounds[1:]):
            grid[word.column] = probs[..., start:stop].sum(-1)
    if chains is not None:
        log_probs = chains.log_probs(readouts[-1])  # [layer, word]
        for i, word in enumerate(words):
            column = torch.full((len(log_probs), len(positions)), math.nan, dtype=log_probs.dtype)
            column[:, -1] = log_probs[:, i].exp()
            grid[word.column] = column
    return grid


def _decoder(tokenizer):
    cache: dict[int, str] = {}

    def decode(token_id: int) -> str:
        if token_id not in cache:
            cache[token_id] = tokenizer.decode([token_id])
        return cache[token_id]

    return decode


@dataclass(frozen=True)
class Exploration:
    """One prompt seen through a lens: :attr:`table` (columns :data:`EXPLORE_COLUMNS`) and its figure."""

    model: str
    prompt: str
    lens: str
    color: str
    target: str | None
    latent: str
    latent_word: str | None
    word_prob: str  # how the target and latent words were scored: prefix (token-set sum) or chain
    table: pd.DataFrame

    @property
    def latent_column(self) -> str:
        return f"p_{self.latent}"

    def figure(self, *, color: str | None = None, window: int | None = None) -> go.Figure:
        """The heatmap of layers x positions (and P(latent), P(target) at the last position)."""
        return explorer_figure(
            self.table,
            color=color or self.color,
            latent=self.latent,
            target=self.target,
            latent_word=self.latent_word,
            title=self.title,
            window=window,
        )

    @property
    def title(self) -> str:
        scored = " by its chain" if self.word_prob == "chain" else ""
        words = f", target {self.target!r}{scored}" if self.target else ""
        return f"{self.model}: {self.lens} lens{words}"

    @property
    def page_title(self) -> str:
        return f"pivotlens explorer: {self.title}"

    def page(self, **figure_options) -> str:
        """The figure as a standalone HTML page (plotly.js inlined: it works offline)."""
        return explorer_page(self.figure(**figure_options), title=self.page_title)

    def write_html(self, path: str | Path, **figure_options) -> Path:
        """Write :meth:`page` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.page(**figure_options), path)
        return path


def explore(
    backend: Backend,
    prompt: str,
    *,
    lens: str = "logit",
    positions: Sequence[int] | range | None = None,
    last: int | None = None,
    top_k: int = 5,
    color: str = "prob",
    target: str | None = None,
    target_lang: str | None = None,
    latent: str = "en",
    latent_word: str | None = None,
    words: str | Path = CONCEPTS,
) -> Exploration:
    """What each layer would predict at each position of ``prompt`` (all positions by default;
    ``last``: only the last ``last`` of them, e.g. the query after few-shot demonstrations).

    ``target`` is a word whose probability is tracked; the latent word is ``latent_word`` or, when
    ``target`` is in the word list ``words``, its concept's word in the ``latent`` language. Both
    are scored as the lens probe scores them (module docstring); ``target_lang`` names the word
    list that decides it (default: the first language of ``words`` that has the target). ``color``
    is ``prob`` (top-1 probability), ``entropy`` or ``lang`` (language of the top-1 token).
    """
    check_request(prompt, lens, color)
    get_language(latent)
    ids = _prompt_ids(backend, prompt)
    kept = _positions(len(ids), positions)[-last:] if last else _positions(len(ids), positions)
    target = target.strip() if target and target.strip() else None
    latent_word = latent_word.strip() if latent_word and latent_word.strip() else None
    word_prob, tracked = "prefix", []
    if target is not None or latent_word is not None:  # the word list and token sets only then
        concepts = load_concepts(words)
        if latent_word is None and target is not None:
            latent_word = latent_word_of(target, latent, concepts)
        sets = backend.token_sets
        named = {}
        if target is not None:
            named["p_target"] = (word_unit(sets, concepts, target, target_lang), "target")
        if latent_word is not None:
            named[f"p_{latent}"] = (word_unit(sets, concepts, latent_word, latent), "latent")
        word_prob, tracked = _tracked(sets, named)
    reader = load_lens(backend, lens)
    grid = _grid(backend, ids, kept, top_k, word_prob, tracked, reader)
    table = _tidy(backend, ids, kept, grid, latent)
    return Exploration(backend.model_name, prompt, lens, color, target, latent, latent_word, word_prob, table)


def _tidy(backend: Backend, ids: list[int], positions: list[int], grid: dict, latent: str) -> pd.DataFrame:
    """One row per layer and position (:data:`EXPLORE_COLUMNS`)."""
    n_layers, n_pos, _ = grid["top_ids"].shape
    decode = _decoder(backend.tokenizer)
    top_ids = grid["top_ids"].reshape(n_layers * n_pos, -1).tolist()
    top_tokens = [[decode(i) for i in row] for row in top_ids]
    nan = np.full(n_layers * n_pos, math.nan)
    return pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_pos),
            "position": np.tile(positions, n_layers),
            "token": np.tile([decode(ids[p]) for p in positions], n_layers),
            "top_tokens": top_tokens,
            "top_probs": grid["top_probs"].reshape(n_layers * n_pos, -1).tolist(),
            "entropy_bits": grid["entropy_bits"].reshape(-1).numpy(),
            f"p_{latent}": grid[f"p_{latent}"].reshape(-1).numpy() if f"p_{latent}" in grid else nan,
            "p_target": grid["p_target"].reshape(-1).numpy() if "p_target" in grid else nan,
            "token_lang": [token_language(row[0]) for row in top_tokens],
        }
    )
