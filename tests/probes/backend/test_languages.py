from __future__ import annotations

import pytest

from probes.backend.errors import InputError, UnknownLanguageError
from probes.backend.languages import LANGUAGES, get_language, in_script, parse_languages


def test_registry_covers_the_data_languages():
    required = "en fr de es it pt ru zh ja ko tr vi id ar el th sw hi bn ta te mr ml nl uk".split()
    assert set(required) <= set(LANGUAGES)


def test_native_names_and_answer_words_are_in_their_script():
    for lang in LANGUAGES.values():
        assert in_script(lang.answer, lang.script), lang.code
        assert in_script(lang.native.replace("Tiếng ", "Tiếng "), lang.script), lang.code


def test_unknown_code_names_the_problem_and_the_fix():
    with pytest.raises(UnknownLanguageError, match="unknown language code 'xx'.*ISO 639-1"):
        get_language("xx")
    with pytest.raises(UnknownLanguageError):
        parse_languages("en,fr,zz")
    assert parse_languages("en, fr") == ["en", "fr"]


def test_in_script():
    assert in_script("облако", "Cyrillic") and not in_script("oблако", "Cyrillic")  # Latin 'o'
    assert in_script("雲と山", "Japanese") and in_script("ラーメン", "Japanese")
    assert in_script("नमस्ते", "Devanagari")  # vowel signs are marks


def test_a_repeated_language_is_counted_once_with_a_warning():
    with pytest.warns(UserWarning, match="counted once"):
        assert parse_languages("zh,fr,zh") == ["zh", "fr"]


def test_no_language_code_at_all_is_an_error():
    with pytest.raises(InputError, match="give comma-separated language codes"):
        parse_languages(" , ")
