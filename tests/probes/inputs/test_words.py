"""Word lists: the shipped data and the errors a malformed user file gets."""

from __future__ import annotations

import pytest

from probes.backend.errors import DataFormatError
from probes.backend.languages import get_language, in_script
from probes.inputs.words import CONCEPTS, PLACEHOLDER, load_cloze, load_concepts

REQUIRED = "en fr de es it pt ru zh ja ko tr vi id ar el th sw hi bn ta te mr ml".split()


def test_concepts_cover_the_required_languages_in_their_scripts():
    concepts = load_concepts()
    languages = [c for c in concepts.columns if c != "concept"]
    assert len(concepts) >= 150 and len(languages) >= 25 and set(REQUIRED) <= set(languages)
    allowed = set()
    copies = CONCEPTS.with_name("concepts_allowed_copies.csv")
    if copies.is_file():
        allowed = {tuple(line.split(",")[:2]) for line in copies.read_text(encoding="utf-8").splitlines()[1:] if line}
    for lang in languages:
        script = get_language(lang).script
        for concept, word in zip(concepts["concept"], concepts[lang]):
            assert in_script(word, script), (lang, concept, word)
            if lang != "en" and (concept, lang) not in allowed:
                assert word.lower() != concepts.set_index("concept").at[concept, "en"].lower(), (lang, concept)


def test_cloze_sentences_mask_a_listed_word():
    cloze, concepts = load_cloze(), load_concepts().set_index("concept")
    assert cloze["lang"].nunique() >= 12
    for row in cloze.itertuples():
        word = concepts.at[row.concept, row.lang]
        assert PLACEHOLDER in row.sentence and word not in row.sentence.replace(PLACEHOLDER, ""), row


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("word,en\ncloud,cloud\n", r":1: the first column must be 'concept'"),
        ("concept,en,xx\ncloud,cloud,c\n", r":1, column 3: unknown language code 'xx'"),
        ("concept,en,fr\ncloud,cloud,nuage\nbook,book\n", r":3: 2 fields, the header has 3"),
        ("concept,en,fr\ncloud,cloud,nuage\nbook,book, \n", r":3, column 3 \(fr\): empty cell"),
        ("concept,en\ncloud,cloud\ncloud,cloud\n", r":3: concept 'cloud' already on line 2"),
    ],
)
def test_malformed_word_list_names_line_and_column(tmp_path, content, message):
    path = tmp_path / "words.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_concepts(path)
