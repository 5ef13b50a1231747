"""Word -> set of token ids whose probabilities are summed (Wendler et al. 2024, spec 1.3),
generalised to any tokenizer.

Wendler's ``process_tokens``: every character prefix of the word, with and without the
SentencePiece space marker ``▁``, kept where it is a vocabulary entry, plus the byte-fallback
token of the word's first UTF-8 byte (for ru and zh). Here the space marker (``▁``, ``Ġ`` or a
plain space), the byte-level encoding of vocabulary entries (GPT-2-style BPE) and the form of
byte-fallback tokens (``<0xXX>``) are read off the tokenizer itself. Matching is
case-sensitive, as in the original.
"""

from __future__ import annotations

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
    def of(cls, tokenizer) -> VocabularyForm:
        vocab = tokenizer.get_vocab()
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
    word only. ``byte_fallback=None`` adds the first-byte token when the word starts with a
    multi-byte character (Wendler does this for ru and zh only; ``True``/``False`` force it).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.form = VocabularyForm.of(tokenizer)

    @cached_property
    def vocab(self) -> dict[str, int]:
        return self.tokenizer.get_vocab()

    def ids(self, word: str, *, prefixes: bool = True, byte_fallback: bool | None = None) -> frozenset[int]:
        word = word.strip()
        if not word:
            raise TokenizerVocabularyError("cannot build a token set for an empty word")
        candidates = [word[:i] for i in range(1, len(word) + 1)] if prefixes else [word]
        out = {self.vocab[k] for s in candidates for k in (self.form.key(" " + s), self.form.key(s)) if k in self.vocab}
        if byte_fallback is None:
            byte_fallback = len(word[0].encode("utf-8")) > 1
        if byte_fallback:
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


def overlapping(a: frozenset[int], b: frozenset[int]) -> bool:
    """Wendler's example filter: a target whose set shares any token with the latent set is dropped."""
    return bool(a & b)
