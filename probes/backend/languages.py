"""Registry of languages: ISO 639-1 code -> English name, native name, script, and the words
prompts need (the cloze "Answer" label), so that templates are built per language."""

from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass

from probes.backend.errors import InputError, UnknownLanguageError


@dataclass(frozen=True)
class Language:
    code: str
    english: str
    native: str
    script: str  # a Unicode character-name prefix family, see SCRIPT_PREFIXES
    answer: str  # the word for "Answer", used by the cloze task (Wendler et al. 2024)


# Unicode character-name prefixes that count as each script (combining marks are skipped).
SCRIPT_PREFIXES: dict[str, tuple[str, ...]] = {
    "Latin": ("LATIN",),
    "Cyrillic": ("CYRILLIC",),
    "Greek": ("GREEK",),
    "Arabic": ("ARABIC",),
    "Devanagari": ("DEVANAGARI",),
    "Bengali": ("BENGALI",),
    "Tamil": ("TAMIL",),
    "Telugu": ("TELUGU",),
    "Malayalam": ("MALAYALAM",),
    "Thai": ("THAI",),
    "Han": ("CJK",),
    "Japanese": ("CJK", "HIRAGANA", "KATAKANA"),
    "Hangul": ("HANGUL",),
    "Hebrew": ("HEBREW",),
}

_LANGUAGES = [
    Language("en", "English", "English", "Latin", "Answer"),
    Language("fr", "French", "Français", "Latin", "Réponse"),
    Language("de", "German", "Deutsch", "Latin", "Antwort"),
    Language("es", "Spanish", "Español", "Latin", "Respuesta"),
    Language("it", "Italian", "Italiano", "Latin", "Risposta"),
    Language("pt", "Portuguese", "Português", "Latin", "Resposta"),
    Language("nl", "Dutch", "Nederlands", "Latin", "Antwoord"),
    Language("ru", "Russian", "Русский", "Cyrillic", "Ответ"),
    Language("uk", "Ukrainian", "Українська", "Cyrillic", "Відповідь"),
    Language("el", "Greek", "Ελληνικά", "Greek", "Απάντηση"),
    Language("tr", "Turkish", "Türkçe", "Latin", "Cevap"),
    Language("vi", "Vietnamese", "Tiếng Việt", "Latin", "Trả lời"),
    Language("id", "Indonesian", "Bahasa Indonesia", "Latin", "Jawaban"),
    Language("sw", "Swahili", "Kiswahili", "Latin", "Jibu"),
    Language("ar", "Arabic", "العربية", "Arabic", "الإجابة"),
    Language("fa", "Persian", "فارسی", "Arabic", "پاسخ"),
    Language("he", "Hebrew", "עברית", "Hebrew", "תשובה"),
    Language("hi", "Hindi", "हिन्दी", "Devanagari", "उत्तर"),
    Language("mr", "Marathi", "मराठी", "Devanagari", "उत्तर"),
    Language("bn", "Bengali", "বাংলা", "Bengali", "উত্তর"),
    Language("ta", "Tamil", "தமிழ்", "Tamil", "பதில்"),
    Language("te", "Telugu", "తెలుగు", "Telugu", "సమాధానం"),
    Language("ml", "Malayalam", "മലയാളം", "Malayalam", "ഉത്തരം"),
    Language("th", "Thai", "ไทย", "Thai", "คำตอบ"),
    Language("zh", "Chinese", "中文", "Han", "答案"),
    Language("ja", "Japanese", "日本語", "Japanese", "答え"),
    Language("ko", "Korean", "한국어", "Hangul", "답"),
]

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _LANGUAGES}


def get_language(code: str) -> Language:
    """Look up a language by ISO 639-1 code, with a clear error for an unknown one."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise UnknownLanguageError(
            f"unknown language code {code!r}; pivotlens knows the ISO 639-1 codes {', '.join(sorted(LANGUAGES))} "
            "(add one to probes/backend/languages.py)"
        ) from None


def parse_languages(spec: str | list[str]) -> list[str]:
    """``"en,fr"`` or ``["en", "fr"]`` -> validated codes, each once (a repeated code would be
    counted twice, so it is dropped with a warning); no code at all is an error."""
    codes = [c.strip() for c in (spec.split(",") if isinstance(spec, str) else spec) if c.strip()]
    if not codes:
        raise InputError(f"no language code in {spec!r}; give comma-separated language codes such as fr,zh")
    for code in codes:
        get_language(code)
    unique = list(dict.fromkeys(codes))
    if len(unique) < len(codes):
        warnings.warn(
            f"languages {','.join(codes)}: each repeated language counted once ({','.join(unique)})", stacklevel=2
        )
    return unique


def in_script(text: str, script: str) -> bool:
    """True when every letter of ``text`` belongs to ``script`` (marks, digits, spaces and
    punctuation are ignored; the Japanese long-vowel mark counts as Japanese)."""
    prefixes = SCRIPT_PREFIXES[script]
    for char in text:
        category = unicodedata.category(char)
        if not category.startswith("L"):
            continue
        name = unicodedata.name(char, "")
        if char == "ー" and script == "Japanese":
            continue
        if not name.startswith(prefixes):
            return False
    return True
