"""The benchmark-format prompt loader, its errors, and few-shot prompting (Marchisio et al. 2024)."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from probes.backend.errors import DataFormatError
from probes.inputs.confusion_data import (
    COLUMNS,
    LCB_DATASETS,
    Demo,
    few_shot_turns,
    load_authored,
    load_demos,
    load_lcb,
    load_prompts,
    locate_lcb,
    select,
    turns_to_prompt,
)


def test_authored_sets_hold_the_documented_counts():
    mono, cross = load_authored("monolingual"), load_authored("crosslingual")
    per_language = {lang: sum(p.language == lang for p in mono) for lang in {p.language for p in mono}}
    first = "en fr de es pt it ja ko zh ar tr hi ru id vi".split()  # the LCB's languages: 32 requests each
    assert {per_language[lang] for lang in first} == {32}
    assert {n for lang, n in per_language.items() if lang not in first} == {16}  # the others: the first 16
    cross_counts = {sum(p.language == lang for p in cross) for lang in {p.language for p in cross}}
    assert cross_counts == {40} and "en" not in {p.language for p in cross}
    assert all(p.location in ("Start", "Middle", "End") and "{language}" in p.phrasing for p in cross)
    # the phrasing, with the language filled in, is in the prompt (data card's promise)
    from probes.backend.languages import get_language

    assert all(p.phrasing.format(language=get_language(p.language).english).lower() in p.prompt.lower() for p in cross)


def _download(tmp_path, rows: str, *, words: bool = True):
    root = tmp_path / "lcb"
    (root / "test_sets" / "crosslingual" / "okapi").mkdir(parents=True)
    (root / "test_sets" / "crosslingual" / "okapi" / "ja.csv").write_text(rows)
    if words:
        (root / "words").write_text("apple\nbanana\n")
    return root


def test_real_benchmark_layout_and_placeholder_are_accepted(tmp_path):
    root = _download(
        tmp_path,
        "prompt,location,phrasing,language,source\n"
        '"Reply in Japanese. Explain X.\nTopic: Y",Start,reply in {language_requested},ja,okapi\n'
        "Explain Z. Answer in Japanese.,End,answer in {language_requested},ja,okapi\n",
    )
    prompts = load_lcb(locate_lcb(root), "crosslingual")
    assert [p.phrasing for p in prompts] == ["reply in {language}", "answer in {language}"]
    assert [p.row for p in prompts] == [0, 1] and prompts[0].prompt.endswith("Topic: Y")
    assert prompts[1].item == "crosslingual|okapi|ja|1"


def test_the_real_benchmark_keeps_its_datasets_and_languages(lcb_folder):
    download = locate_lcb(lcb_folder)
    assert download.archive == lcb_folder / "test_sets.zip"  # read from the zip, never unpacked into the repo
    for task, datasets in LCB_DATASETS.items():
        prompts = load_lcb(download, task)
        assert sorted({p.source for p in prompts}) == sorted(datasets)
        sizes = {(p.source, p.language): p.row + 1 for p in prompts}
        assert set(sizes.values()) <= {99, 100}  # the benchmark's files: 100 prompts (complex_prompts: 99)
        assert len(prompts) == sum(sizes.values())
    mono = {(p.source, p.language) for p in load_lcb(download, "monolingual")}
    cross = load_lcb(download, "crosslingual")
    assert len(mono) == 24 and ("native", "ko") in mono and ("aya", "en") in mono
    assert {p.language for p in cross} == {p.language for p in cross if p.language != "en"}
    assert len({p.language for p in cross}) == 14 and {p.location for p in cross} == {"Start", "Middle", "End"}


def test_the_zip_and_its_unpacked_folder_read_the_same(lcb_folder, tmp_path):
    with zipfile.ZipFile(lcb_folder / "test_sets.zip") as archive:
        archive.extractall(tmp_path)
    shutil.copy(lcb_folder / "words", tmp_path / "words")
    unpacked, zipped = locate_lcb(tmp_path), locate_lcb(lcb_folder)
    assert unpacked.archive is None
    for task in LCB_DATASETS:
        assert load_lcb(unpacked, task, per_language=3) == load_lcb(zipped, task, per_language=3)


def test_per_language_subsample_is_deterministic_and_per_file(lcb_folder):
    download = locate_lcb(lcb_folder)
    first = load_lcb(download, "monolingual", per_language=4, seed=1)
    assert first == load_lcb(download, "monolingual", per_language=4, seed=1)
    assert first != load_lcb(download, "monolingual", per_language=4, seed=2)
    counts = {}
    for p in first:
        counts[(p.source, p.language)] = counts.get((p.source, p.language), 0) + 1
    assert set(counts.values()) == {4} and len(counts) == 24
    # a file's draw does not depend on which other datasets or languages are read
    alone = load_lcb(download, "monolingual", datasets=["dolly"], langs=["ru"], per_language=4, seed=1)
    assert alone == [p for p in first if (p.source, p.language) == ("dolly", "ru")]
    assert [p.row for p in alone] == sorted(p.row for p in alone) and len({p.row for p in alone}) == 4


def test_an_unknown_dataset_is_refused_with_the_list(lcb_folder):
    with pytest.raises(DataFormatError, match="no crosslingual dataset 'aya'; it has complex_prompts, okapi, sharegpt"):
        load_lcb(locate_lcb(lcb_folder), "crosslingual", datasets=["aya"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda root: (root / "words").write_text("apple\n"),
            r"missing test_sets/ or test_sets\.zip \(the prompts\); download",
        ),
        (lambda root: (root / "test_sets").mkdir(), r"missing words \(the English word list"),
        (lambda root: None, r"missing test_sets/ or test_sets\.zip \(the prompts\) and words"),
    ],
)
def test_a_download_without_its_parts_names_what_is_missing(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataFormatError, match=message) as info:
        locate_lcb(tmp_path)
    assert "https://github.com/for-ai/language-confusion" in str(info.value)


def test_no_path_and_no_environment_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("PIVOTLENS_LCB", raising=False)
    with pytest.raises(DataFormatError, match=r"--lcb PATH or set \$PIVOTLENS_LCB"):
        locate_lcb()


def _write(tmp_path, text: str):
    path = tmp_path / "prompts.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt,source\nhello,x\n", r"prompts.csv:1: the header must hold the monolingual columns"),
        ("prompt,source,language\nBonjour,a,fr\n,a,fr\n", r"prompts.csv:3, column 1 \(prompt\): empty cell"),
        ("prompt,source,language\nBonjour,a,xx\n", r"prompts.csv:2, column 3 \(language\): unknown language code 'xx'"),
        ('prompt,source,language\n"two\nlines",a,fr\nBonjour,a\n', r"prompts.csv:4: 2 fields, the header has 3"),
        (
            "prompt,location,phrasing,language,source\nHi,Top,reply in {language},fr,a\n",
            r"prompts.csv:2, column 2 \(location\): 'Top' is not one of Start, Middle, End",
        ),
        (
            "prompt,location,phrasing,language,source\nHi,End,reply in French,fr,a\n",
            r"prompts.csv:2, column 3 \(phrasing\): 'reply in French' has no \{language\}",
        ),
    ],
)
def test_malformed_files_name_file_line_and_column(tmp_path, text, message):
    with pytest.raises(DataFormatError, match=message):
        load_prompts(_write(tmp_path, text))


def test_task_is_detected_or_checked(tmp_path):
    path = _write(tmp_path, "prompt,source,language\nBonjour,a,fr\n")
    assert load_prompts(path)[0].task == "monolingual"
    with pytest.raises(
        DataFormatError, match="a crosslingual file needs the columns " + ",".join(COLUMNS["crosslingual"])
    ):
        load_prompts(path, "crosslingual")


def test_select_takes_the_first_n_per_language_and_rejects_missing_languages():
    chosen = select(load_authored("monolingual"), ["fr", "zh"], 3)
    assert [(p.language, p.row) for p in chosen] == [("fr", 0), ("fr", 1), ("fr", 2), ("zh", 0), ("zh", 1), ("zh", 2)]
    with pytest.raises(DataFormatError, match=r"no prompts in \['en'\]"):
        select(load_authored("crosslingual"), ["en"], 3)


def test_turns_to_prompt_renders_q_and_a():
    turns = [("User", "Bonjour ?"), ("Chatbot", "Salut."), ("User", "Ça va ?")]
    assert turns_to_prompt(turns) == "Q: Bonjour ?\nA: Salut.\n\nQ: Ça va ?\nA:"
    assert turns_to_prompt([("User", "Hi")]) == "Q: Hi\nA:"


def test_few_shot_demonstrations_avoid_the_target_language():
    zh = select(load_authored("monolingual"), ["zh"], 1)[0]
    turns = few_shot_turns(zh, 5)
    demos = {d.question: d for d in load_demos()}
    users = [msg for role, msg in turns[:-1] if role == "User"]
    assert len(users) == 5 and turns[-1] == ("User", zh.prompt)
    assert all(demos[q].language != "zh" for q in users)
    assert [role for role, _ in turns] == ["User", "Chatbot"] * 5 + ["User"]


def test_crosslingual_demonstrations_ask_in_english_for_their_own_language():
    fr = select(load_authored("crosslingual"), ["fr"], 1)[0]
    turns = few_shot_turns(fr, 2)
    pool = [d for d in load_demos() if d.language != "fr"]
    assert turns[0][1] == f"Reply in Russian. {pool[0].question_en}" and turns[1][1] == pool[0].answer
    assert turns[2][1] == f"{pool[1].question_en} Please answer in Chinese."


def test_too_many_shots_is_a_clear_error():
    demos = [Demo("fr", "q", "q", "a"), Demo("de", "q", "q", "a")]
    prompt = select(load_authored("monolingual"), ["fr"], 1)[0]
    with pytest.raises(ValueError, match="2-shot needs 2 demonstrations outside 'fr'; there are 1"):
        few_shot_turns(prompt, 2, demos)
