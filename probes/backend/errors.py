"""Errors that name the problem and the fix. Every user-facing failure in pivotlens is one of these."""

from __future__ import annotations


class PivotlensError(Exception):
    """Base class: a message that says what is wrong and what to do."""


class ModelNotFoundError(PivotlensError, FileNotFoundError):
    """An unknown model name or a folder that does not exist."""


class UnsupportedArchitectureError(PivotlensError):
    """A model whose layers, final norm or unembedding cannot be located."""


class UnknownLanguageError(PivotlensError, KeyError):
    """An ISO 639-1 code that the language registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TokenizerVocabularyError(PivotlensError):
    """A tokenizer that lacks the vocabulary a probe needs (e.g. no token for a word)."""


class DataFormatError(PivotlensError, ValueError):
    """A malformed data file; the message names the file, line and column."""


class InputError(PivotlensError, ValueError):
    """An option value pivotlens cannot use (device, dtype, layer, output folder, ...)."""


class LayerError(InputError, IndexError):
    """A layer index outside the model's blocks."""


class PromptError(PivotlensError, ValueError):
    """A prompt a model cannot read: empty, or longer than the model's context."""


class UnknownLensError(PivotlensError, ValueError):
    """A lens kind that pivotlens does not know."""


class UnknownNameError(PivotlensError, KeyError):
    """A name that no registered probe, report section or figure family has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TaskRequestError(PivotlensError, ValueError):
    """A lens task that cannot be built as asked (no cloze data for a language, a translation
    whose source is its target)."""
