"""Token sets (Wendler et al. 2024, ``process_tokens``) on both embedded tokenizers and a tiny one."""

from __future__ import annotations

from collections import Counter

import pytest
from transformers import AutoTokenizer

from probes.backend.models import ensure_embedded
from probes.backend.tokensets import TokenSets, VocabularyForm, overlapping, share_first_unit
from probes.inputs.words import load_concepts
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
    assert _strings(tok, sets.ids("云")) == {"▁云", "云"}  # no byte token: it spells less than 云
    assert _strings(tok, sets.ids("облако")) == {"▁о", "о", "▁об", "об", "▁обл", "▁обла"}
    assert _strings(tok, sets.ids("Buch")) & {"buch", "▁buch"} == set()  # case-sensitive
    assert sets.is_single_token("cloud") and not sets.is_single_token("nuage")
    # Wendler's original adds the first byte's fallback token for ru and zh
    assert _strings(tok, sets.ids("云", byte_fallback=True)) == {"<0xE4>", "▁云", "云"}


@pytest.mark.slow
def test_smollm_vectors_byte_level():
    tok = AutoTokenizer.from_pretrained(ensure_embedded("smollm2-135m"))
    sets = TokenSets(tok)
    assert sets.form == VocabularyForm("Ġ", byte_level=True, byte_fallback=False)
    assert _strings(tok, sets.ids("book")) == {"b", "Ġb", "bo", "Ġbo", "Ġboo", "book", "Ġbook"}
    # Cyrillic: byte-level spellings of whole characters; the first byte (Ð = 0xD0) only on request
    assert _strings(tok, sets.ids("облако")) == {"Ð¾", "ĠÐ¾"}
    assert _strings(tok, sets.ids("облако", byte_fallback=True)) == {"Ð", "Ð¾", "ĠÐ¾"}
    assert sets.ids("云") == frozenset() and _strings(tok, sets.ids("云", byte_fallback=True)) == {"ä"}
    assert tok.decode(sets.chain("cloud")) == "cloud"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["te", "ta", "ml", "bn"])
def test_smollm_units_identify_words_and_spell_whole_characters(lang):
    """On SmolLM2 every te/ta/ml/bn word used to get the single byte token 0xE0 as its set; now
    each concept is scored by a unit (prefix set or chain) no other concept of the language
    shares, and every token of a prefix unit spells at least the first whole character."""
    tok = AutoTokenizer.from_pretrained(ensure_embedded("smollm2-135m"))
    concepts = load_concepts()
    units = TokenSets(tok).units(concepts[lang])
    keys = {
        w: (
            u.kind,
            tuple(sorted(u.prefix_set)) if u.identified else tuple(tok(w, add_special_tokens=False)["input_ids"]),
        )
        for w, u in units.items()
    }
    owners = Counter(keys[w.strip()] for w in concepts[lang])
    unique = sum(owners[keys[w.strip()]] == 1 for w in concepts[lang])
    assert unique >= 150, (lang, unique)
    for word, unit in units.items():
        if unit.identified:
            for token in unit.prefix_set:
                text = tok.decode([token]).lstrip()
                assert text and "\ufffd" not in text and word.startswith(text), (word, text)
        else:
            assert tok.decode(TokenSets(tok).chain(word)) == word


def test_units_fall_back_to_chains_for_sets_that_do_not_identify_their_word():
    sets = TokenSets(tiny_tokenizer())
    units = sets.units(["cloud", "river", "rivière", "云", "облако"])
    assert units["cloud"].kind == "prefix"
    # the tiny vocabulary spells "riv" for both river and rivière: the same set, so both go by chain
    same = units["river"].prefix_set == units["rivière"].prefix_set
    assert (units["river"].kind, units["rivière"].kind) == (("chain", "chain") if same else ("prefix", "prefix"))
    assert all(u.kind == "chain" or u.prefix_set for u in units.values())
    assert share_first_unit(units["river"], units["rivière"], "chain")  # same first character
    assert not share_first_unit(units["cloud"], units["облако"], "chain")
    assert share_first_unit(units["cloud"], units["cloud"], "prefix")


def test_overlap_filter():
    assert overlapping(frozenset({1, 2}), frozenset({2, 3}))
    assert not overlapping(frozenset({1}), frozenset({3}))
