"""Token sets (Wendler et al. 2024, ``process_tokens``) on both embedded tokenizers and a tiny one."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from probes.backend.models import ensure_embedded
from probes.backend.tokensets import TokenSets, VocabularyForm, overlapping
from tests.conftest import tiny_tokenizer


def _strings(tokenizer, ids) -> set[str]:
    return set(tokenizer.convert_ids_to_tokens(sorted(ids)))


def test_prefix_rule_on_a_byte_level_tokenizer():
    tok = tiny_tokenizer()
    sets = TokenSets(tok)
    assert sets.form.space_marker == "Ġ" and sets.form.byte_level
    ids = sets.ids("cloud")
    strings = _strings(tok, ids)
    assert "c" in strings  # the single-letter prefix is always in (by design)
    assert all(s.lstrip("Ġ") in {"c", "cl", "clo", "clou", "cloud"} for s in strings)
    assert sets.ids("cloud", prefixes=False) <= ids


@pytest.mark.slow
def test_gemma_vectors_including_byte_fallback():
    tok = AutoTokenizer.from_pretrained(ensure_embedded("gemma-3-270m"))
    sets = TokenSets(tok)
    assert sets.form == VocabularyForm("▁", byte_level=False, byte_fallback=True)
    assert _strings(tok, sets.ids("cloud")) == {"▁c", "c", "▁cl", "cl", "▁clo", "clo", "▁cloud", "cloud"}
    assert _strings(tok, sets.ids("nuage")) == {"▁n", "n", "▁nu", "nu"}
    assert _strings(tok, sets.ids("云")) == {"<0xE4>", "▁云", "云"}
    assert _strings(tok, sets.ids("облако")) == {"<0xD0>", "▁о", "о", "▁об", "об", "▁обл", "▁обла"}
    assert _strings(tok, sets.ids("Buch")) & {"buch", "▁buch"} == set()  # case-sensitive
    assert sets.is_single_token("cloud") and not sets.is_single_token("nuage")
    assert "<0xE4>" not in _strings(tok, sets.ids("云", byte_fallback=False))


@pytest.mark.slow
def test_smollm_vectors_byte_level():
    tok = AutoTokenizer.from_pretrained(ensure_embedded("smollm2-135m"))
    sets = TokenSets(tok)
    assert sets.form == VocabularyForm("Ġ", byte_level=True, byte_fallback=False)
    assert _strings(tok, sets.ids("book")) == {"b", "Ġb", "bo", "Ġbo", "Ġboo", "book", "Ġbook"}
    # Cyrillic: byte-level spellings, and the first byte (Ð = 0xD0) as the fallback token
    assert _strings(tok, sets.ids("облако")) == {"Ð", "Ð¾", "ĠÐ¾"}
    assert _strings(tok, sets.ids("云")) == {"ä"}
    assert tok.decode(sets.chain("cloud")) == "cloud"


def test_overlap_filter():
    assert overlapping(frozenset({1, 2}), frozenset({2, 3}))
    assert not overlapping(frozenset({1}), frozenset({3}))
