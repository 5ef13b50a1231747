"""The language of one token, as the lens explorer colours it: hand-checked tokens in eight scripts."""

from __future__ import annotations

import pytest

from probes.language_id import token_language

HAND_CHECKED = {
    " the": "en",  # Latin: fastText
    " Haus": "de",
    " maison": "fr",
    "ciudad": "es",
    "dog": "Latin",  # Latin, fastText unsure (score 0.12): the script only
    " белое": "ru",  # Cyrillic: fastText
    "облако": "Cyrillic",  # fastText says Macedonian, which is no Cyrillic language of the registry
    "的": "zh",  # Han only
    "答案": "zh",
    "の": "ja",  # kana
    "ありがとう": "ja",
    "한국어": "ko",  # Hangul belongs to Korean alone
    "Ελληνικά": "el",
    "עברית": "he",
    "किताब": "hi",  # Devanagari: fastText
    "كتاب": "ar",  # Arabic script: fastText
    "123": "other",  # no letters
    " ,": "other",
    "\ufffd": "other",  # half a UTF-8 character
    "abcд": "other",  # two scripts
}


@pytest.mark.parametrize(("token", "expected"), HAND_CHECKED.items())
def test_token_language_on_hand_checked_tokens(token, expected):
    assert token_language(token) == expected
