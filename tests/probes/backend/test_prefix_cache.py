"""A shared prefix encoded once (its KV cache reused by every batch after it) gives what encoding
every row in full gives: the same readouts within 1e-5, on both backends, with Gemma's sliding
window shorter than the prefix, with rows of different lengths and on both embedded models."""

from __future__ import annotations

import pytest
import torch

from probes.backend import LensRequest
from probes.backend.base import Encoded, chain_reads, common_prefix, resolve_positions
from probes.inputs.tasks import load_task, task_prompts
from tests.conftest import EMBEDDED_MODELS, embedded, tiny_backend

TOLERANCE = 1e-5


def random_rows(vocab_size: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in lengths]


def readouts(backend, enc: Encoded, gram: torch.Tensor):
    """Every lens reduction at each row's last token (answer-like ids, top-3, log-probabilities, energy)."""
    ids = torch.tensor([[3, 4, 5]] * enc.batch_size)
    return backend.lens(enc, LensRequest(token_ids=ids, top_k=3, log_probs=True, energy_gram=gram))


def assert_same_readout(cached, full, atol: float = TOLERANCE) -> None:
    for name in ("entropy_bits", "probs_at_ids", "log_probs_at_ids", "top_probs", "energy"):
        got, want = cached.require(name), full.require(name)
        assert (got - want).abs().max() <= atol * max(1.0, float(want.abs().max())), name
    assert torch.equal(cached.require("top_ids"), full.require("top_ids"))


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_a_cached_prefix_gives_the_uncached_readouts(tiny_kind, backend_name):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    # a prefix longer than the tiny Gemmas' sliding window (8), rows of different lengths (one token, past the window)
    prefix_ids, *rows = random_rows(backend.vocab_size, [13, 5, 11, 1])
    prefix = backend.shared_prefix(prefix_ids)
    assert prefix.cache is not None
    enc = backend.encode_after(prefix, rows)
    assert enc.input_ids.shape == (3, 11)  # the forward pass sees the rows only
    full = backend.encode([prefix_ids + row for row in rows])
    gram = backend.unembedding_gram()
    assert_same_readout(readouts(backend, enc, gram), readouts(backend, full, gram))
    # the residual stream itself, at every layer, at each row's last token
    after = backend.residuals(backend.encode_after(prefix, rows))
    assert torch.allclose(after, backend.residuals(full), atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
def test_chains_of_different_lengths_after_a_cached_prefix_score_as_in_full(tiny_kind, backend_name):
    backend = tiny_backend(tiny_kind, backend=backend_name)
    context, short, long = random_rows(backend.vocab_size, [13, 1, 6])
    chains = chain_reads([context[-1:], context[-1:]], [short, long])  # rows of 1 and 6 tokens after the prefix
    enc = backend.encode_after(backend.shared_prefix(context[:-1]), chains.rows)
    (readout,) = backend.lens_reads(enc, [chains.read])
    full = backend.chain_log_probs([context, context], [short, long])
    assert torch.allclose(chains.log_probs(readout), full, rtol=TOLERANCE, atol=TOLERANCE)


def test_one_prefix_cache_serves_batches_of_any_size_unchanged():
    backend = tiny_backend("gemma3")
    prefix_ids, *rows = random_rows(backend.vocab_size, [12, 4, 9, 2, 6, 3])
    prefix, gram = backend.shared_prefix(prefix_ids), backend.unembedding_gram()
    for batch in (rows[:2], rows[2:], rows[:2]):  # the first batch again: the cache was not extended by the others
        full = backend.encode([prefix_ids + row for row in batch])
        assert_same_readout(readouts(backend, backend.encode_after(prefix, batch), gram), readouts(backend, full, gram))


def test_a_remote_model_encodes_the_prefix_with_every_row():
    backend = tiny_backend("llama", backend="nnsight", remote="local")
    prefix_ids, *rows = random_rows(backend.vocab_size, [7, 3, 5])
    prefix = backend.shared_prefix(prefix_ids)
    assert not backend.reuses_prefix_cache and prefix.cache is None
    enc, full = backend.encode_after(prefix, rows), backend.encode([prefix_ids + row for row in rows])
    assert torch.equal(enc.input_ids, full.input_ids) and torch.equal(enc.attention_mask, full.attention_mask)


def test_offsets_count_from_each_rows_last_token_after_a_prefix():
    backend = tiny_backend("llama")
    prefix = backend.shared_prefix([5, 6, 7])
    enc = backend.encode_after(prefix, [[8, 9, 10, 11], [12], [13, 14]])
    assert enc.attention_mask.shape == (3, 3 + 4)
    assert resolve_positions((-1,), enc)[:, 0].tolist() == [3, 0, 1]
    assert resolve_positions(torch.tensor([2]), enc)[:, 0].tolist() == [2, 2, 2]  # absolute: an index into the rows
    with pytest.raises(IndexError, match="outside"):
        resolve_positions((-2,), enc)  # the one-token row has no second-to-last token of its own
    left = backend.encode([[8, 9, 10, 11], [12], [13, 14]])  # left padding: the last column for every row
    assert resolve_positions((-1,), left)[:, 0].tolist() == [3, 3, 3]


def test_an_empty_row_after_a_cached_prefix_is_refused():
    backend = tiny_backend("llama")
    with pytest.raises(ValueError, match="at least one token"):
        backend.encode_after(backend.shared_prefix([5, 6]), [[7], []])


def test_common_prefix_leaves_every_row_a_token_of_its_own():
    assert common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == [1, 2]
    assert common_prefix([[1, 2, 9], [1, 2, 3, 4]]) == [1, 2]
    assert common_prefix([[1, 2], [3]]) == []
    assert common_prefix([[5, 6, 7]]) == [5, 6]


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["transformer-lens", "nnsight"])
@pytest.mark.parametrize("name", EMBEDDED_MODELS)
def test_a_cached_prefix_gives_the_uncached_readouts_on_embedded_models(name, backend_name):
    backend = embedded(name, backend_name)
    # the exit probe's case: 3-shot Russian prompts sharing their instruction
    rows = [backend.tokenize(p.text) for p in task_prompts(load_task("sentiment"), "ru", shots=3, n=4)]
    shared = common_prefix(rows)
    assert len(shared) >= 10
    prefix, gram = backend.shared_prefix(shared), backend.unembedding_gram()
    cached = readouts(backend, backend.encode_after(prefix, [row[len(shared) :] for row in rows]), gram)
    assert_same_readout(cached, readouts(backend, backend.encode(rows), gram))


@pytest.mark.slow
def test_a_prefix_longer_than_gemmas_sliding_window_gives_the_uncached_readouts():
    backend = embedded("gemma-3-270m")
    window = int(backend.config.sliding_window)
    prompts = task_prompts(load_task("topic"), "en", shots=3, n=8)
    text = "\n\n".join(p.text for p in prompts)
    prefix_ids = backend.tokenize(text)[: window + 40]
    assert len(prefix_ids) == window + 40
    rows = [backend.tokenize(f" {p.text[-60:]}", add_special_tokens=False) for p in prompts[:3]]
    prefix, gram = backend.shared_prefix(prefix_ids), backend.unembedding_gram()
    cached = readouts(backend, backend.encode_after(prefix, rows), gram)
    assert_same_readout(cached, readouts(backend, backend.encode([prefix_ids + row for row in rows]), gram))
