"""Word -> set of token ids whose probabilities are summed (Wendler et al. 2024, ``process_tokens``),
generalised to any tokenizer.

Wendler's ``process_tokens``: every character prefix of the word, with and without the
SentencePiece space marker ``▁``, kept where it is a vocabulary entry, plus the byte-fallback
token of the word's first UTF-8 byte (for ru and zh). Here the space marker (``▁``, ``Ġ`` or a
plain space), the byte-level encoding of vocabulary entries (GPT-2-style BPE) and the form of
byte-fallback tokens (``<0xXX>``) are read off the tokenizer itself. Matching is
case-sensitive, as in the original.

A token must spell at least the word's first whole character: the first-byte token is not
added by default (``byte_fallback=True`` restores Wendler's rule). On a byte-level vocabulary
without whole-character tokens for a script (SmolLM2 on te, ta, ml, bn), that byte is shared by
every word of the script, so summing over it measures the script, not the word.
:meth:`TokenSets.units` decides per language which words a prefix set identifies; the others
are scored by the chain probability of the whole word (docs/methods: token sets).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from probes.backend.errors import TokenizerVocabularyError


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character map used by byte-level BPE vocabularies."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


_BYTE_MAP = _bytes_to_unicode()


@dataclass(frozen=True)
class VocabularyForm:
    """How a tokenizer spells strings in its vocabulary."""

    space_marker: str  # "▁" (SentencePiece), "Ġ" (byte-level BPE) or " "
    byte_level: bool  # vocabulary entries are byte-level encoded (GPT-2 style)
    byte_fallback: bool  # the vocabulary has "<0xXX>" byte tokens

    @classmethod
    def of(cls, tokenizer, vocab: Mapping[str, int]) -> VocabularyForm:
        """Read off ``tokenizer`` and its vocabulary ``vocab`` (``tokenizer.get_vocab()``)."""
        pieces = tokenizer.convert_ids_to_tokens(tokenizer("a the", add_special_tokens=False)["input_ids"])
        last = pieces[-1]
        if not last.endswith("the") or len(last) != 4:
            raise TokenizerVocabularyError(
                f"cannot derive the space marker of {type(tokenizer).__name__}: ' the' tokenizes as {pieces}; "
                "pass a tokenizer whose vocabulary has word-initial tokens"
            )
        accent = tokenizer.convert_ids_to_tokens(tokenizer("é", add_special_tokens=False)["input_ids"])
        byte_level = "".join(accent).lstrip(last[0]) == _BYTE_MAP[0xC3] + _BYTE_MAP[0xA9]
        return cls(last[0], byte_level, "<0xE4>" in vocab)

    def key(self, text: str) -> str:
        """The vocabulary spelling of ``text`` (a leading space becomes the space marker)."""
        if self.byte_level:
            return "".join(_BYTE_MAP[b] for b in text.encode("utf-8"))
        return text.replace(" ", self.space_marker)

    def first_byte_key(self, word: str) -> str:
        byte = word.encode("utf-8")[0]
        return _BYTE_MAP[byte] if self.byte_level else f"<0x{byte:02X}>"


class TokenSets:
    """Build token-id sets for words with one tokenizer.

    ``prefixes=True`` is Wendler's rule (every character prefix); ``False`` keeps the whole
    word only. ``byte_fallback=True`` adds the token of the word's first UTF-8 byte, as Wendler
    does for ru and zh; off by default, because that byte spells less than a character.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.form = VocabularyForm.of(tokenizer, self.vocab)

    @cached_property
    def vocab(self) -> dict[str, int]:
        return self.tokenizer.get_vocab()  # a fresh dict of the whole vocabulary at every call: read once

    def ids(self, word: str, *, prefixes: bool = True, byte_fallback: bool = False) -> frozenset[int]:
        word = word.strip()
        if not word:
            raise TokenizerVocabularyError("cannot build a token set for an empty word")
        candidates = [word[:i] for i in range(1, len(word) + 1)] if prefixes else [word]
        out = {self.vocab[k] for s in candidates for k in (self.form.key(" " + s), self.form.key(s)) if k in self.vocab}
        if byte_fallback and len(word[0].encode("utf-8")) > 1:
            key = self.form.first_byte_key(word)
            if key in self.vocab:
                out.add(self.vocab[key])
        return frozenset(out)

    def is_single_token(self, word: str) -> bool:
        """Wendler's "single token": the word, with or without a leading space, is one entry."""
        return any(self.form.key(s) in self.vocab for s in (word, " " + word))

    def chain(self, word: str, *, leading_space: bool = False) -> list[int]:
        """The token ids that spell the whole word as a continuation (for chain probability)."""
        text = (" " if leading_space else "") + word
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def units(self, words: Iterable[str]) -> dict[str, WordUnit]:
        """The scoring unit of every word of one language's list: its prefix set where that set
        identifies the word (non-empty, and no other word of the list has the same set), else
        the chain of the whole word."""
        unique = sorted({w.strip() for w in words})
        prefix = {w: self.ids(w) for w in unique}
        owners = Counter(prefix.values())
        return {w: WordUnit(w, prefix[w], bool(prefix[w]) and owners[prefix[w]] == 1) for w in unique}


@dataclass(frozen=True)
class WordUnit:
    """How the lens scores one word: ``prefix`` (the sum over its prefix set) where the set
    identifies the word, else ``chain`` (the chain probability of the whole word)."""

    word: str
    prefix_set: frozenset[int]
    identified: bool  # the prefix set is non-empty and shared by no other word of its language

    @property
    def kind(self) -> str:
        return "prefix" if self.identified else "chain"


def scoring_kind(*units: WordUnit) -> str:
    """How the words of one comparison are scored, all alike: ``prefix`` where every word's prefix
    set identifies it, else ``chain`` for every word (when the target goes by its chain, so does
    the latent word)."""
    return "prefix" if all(u.identified for u in units) else "chain"


def share_first_unit(a: WordUnit, b: WordUnit, kind: str) -> bool:
    """Could the lens mistake one word for the other at the first scored token? Under ``prefix``
    scoring (both sets identifying): the sets share a token. Otherwise (a chain involved): the
    words start with the same character, whose tokens open both chains."""
    if kind == "prefix" and a.identified and b.identified:
        return bool(a.prefix_set & b.prefix_set)
    return a.word[:1] == b.word[:1]


def overlapping(a: frozenset[int], b: frozenset[int]) -> bool:
    """Wendler's example filter: a target whose set shares any token with the latent set is dropped."""
    return bool(a & b)
