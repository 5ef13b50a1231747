"""Every data language in every section: the 25 languages of ``data/concepts.csv`` against
every loader of authored data, with the row checks (script, no English, balanced labels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probes.inputs.confusion_data import load_authored
from probes.inputs.data_checks import DataFile, authored_files, check_rows, languages_of
from probes.inputs.instruction_data import load_instructions, load_sentences
from probes.inputs.tasks import get_task, load_task
from probes.inputs.words import load_cloze, load_concepts

ROOT = Path(__file__).resolve().parents[3]
FILES = authored_files(ROOT)
LANGS = [c for c in load_concepts().columns if c != "concept"]


def _load(name: str, lang: str) -> int:
    """Rows of ``lang`` through the product's own loader of ``name``."""
    if name in ("sentiment", "topic", "mcqa"):
        get_task(name).template(lang)  # the prompt template exists too
        return len(load_task(name).rows(lang))
    if name == "cloze":
        return int((load_cloze()["lang"] == lang).sum())
    if name.startswith("confusion-"):
        return sum(p.language == lang for p in load_authored(name.removeprefix("confusion-")))
    loader = load_instructions if name == "instructions" else load_sentences
    return len(loader(langs=[lang]))


def test_the_data_languages_are_the_25_of_the_concept_list():
    assert len(LANGS) == 25 and {"ar", "ta", "ml", "te", "th", "el", "mr", "sw", "bn"} <= set(LANGS)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", list(FILES))
def test_every_language_has_valid_rows_in_every_section(name, lang):
    data = FILES[name]
    if name == "confusion-crosslingual" and lang == "en":
        pytest.skip("the cross-lingual set asks, in English, for another language")
    assert lang in languages_of(data), f"{data.path} has no rows in {lang}"
    assert _load(name, lang) > 0
    problems = check_rows(data, lang)
    assert not problems, "\n".join(problems)


def test_a_bad_row_is_named_by_file_line_and_column(tmp_path):
    path = tmp_path / "sentiment.csv"
    path.write_text(
        "item,lang,text,label\n"
        "0,ta,இந்தப் படம் மிகவும் அருமையாக இருந்தது.,positive\n"
        "1,ta,This film was a complete waste of my evening.,negative\n"
        "2,sw,Filamu hii ilikuwa nzuri sana and the music too.,positive\n"
        "3,sw,Filamu hii ilikuwa nzuri sana.,positive\n"
        "4,sw,Sikupenda filamu hii hata kidogo.,negative\n"
        "5,sw,Filamu nzuri sana ya familia.,positive\n",
        encoding="utf-8",
    )
    data = DataFile(path, "lang", ("text",), "label")
    tamil = "only 0% of the letters are Tamil ('This film was a complete waste of my evening.')"
    assert check_rows(data, "ta") == [f"{path}:3, column 3 (text): {tamil}"]
    assert check_rows(data, "sw") == [
        f"{path}:4, column 3 (text): English left in the text (and, the)",
        f"{path}, column 4 (label): labels of sw are unbalanced (negative 1, positive 3)",
    ]
