"""LPR, WPR and LCPR on hand-checked completions (Marchisio et al. 2024): every pass or fail reason asserted,
then the benchmark's aggregation on a constructed table, checked against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyses.stats.confusion_metrics import (
    compute_all_metrics,
    group_metrics,
    judge_completions,
    lcpr,
    paper_table,
    read_completions,
)
from probes.backend.errors import DataFormatError
from probes.language_id import en_words, judge, langid, normalize, predict_language, read_en_words, tokenize_line

FR_1 = "Le ciel est bleu à cause de la diffusion de la lumière."
FR_2 = "Les petites longueurs d'onde sont dispersées davantage par l'air."
EN_1 = "Here are some tips to help you sleep better at night."
EN_2 = "Go to bed at the same time every day."


def test_normalisation_cuts_next_question_and_strips_punctuation():
    assert normalize("  Bonjour.\nQ: Et ensuite ?\nA: rien") == "Bonjour"
    assert normalize("don't stop—ever، ok!") == "dont stop ever ok"
    # punctuation-only tokens disappear, so this line falls below the 5-token minimum
    assert len(["Oui", ",", "non", ",", "peut-être"]) == 5
    assert tokenize_line(normalize("Oui , non , peut-être"), "fr") == ("Oui", "non", "peutêtre")
    assert judge("Oui , non , peut-être", "fr").skipped


def test_multiline_completion_in_the_right_language_passes():
    j = judge(f"{FR_1}\n{FR_2}", "fr")
    assert (j.n_lines, j.line_errors, j.line_labels) == (2, 0, ("fr", "fr"))
    assert j.error_type == "correct"


def test_one_english_line_makes_a_partial_line_error():
    j = judge(f"Voici quelques conseils pour mieux dormir la nuit.\n{EN_1}", "fr")
    assert j.line_labels == ("fr", "en") and j.error_type == "partial_error" and j.line_error


def test_an_all_english_answer_is_a_full_line_error():
    j = judge(f"{EN_1}\n{EN_2}", "fr")
    assert j.line_labels == ("en", "en") and j.error_type == "full_error"


def test_lines_under_five_tokens_are_ignored_and_all_short_means_skipped():
    assert judge("Oui.\nMerci beaucoup !", "fr").error_type == "skipped"
    # a 4-token English line is not looked at, so the French line alone decides
    j = judge("Bonjour à tous les amis du monde entier.\nThank you very much", "fr")
    assert len(tokenize_line("Thank you very much", "fr")) == 4
    assert (j.n_lines, j.error_type) == (1, "correct")


def test_exactly_five_tokens_is_enough():
    j = judge("the the the the the", "en")
    assert j.n_lines == 1 and j.line_labels == ("en",)


def test_next_question_of_a_base_model_is_cut_before_judging():
    j = judge(f"{FR_1}\nQ: Why is the grass green and not blue at all?", "fr")
    assert (j.n_lines, j.error_type) == (1, "correct")
    assert judge(f"{FR_1}\nWhy is the grass green and not blue at all?", "fr").error_type == "partial_error"


def test_mixed_script_line_is_judged_as_a_whole():
    # Japanese nouns inside an English sentence: fastText calls the line English
    j = judge("The capital of 日本 is 東京 and it is very big", "ja")
    assert j.line_labels == ("en",) and j.error_type == "full_error"
    # English words inside a Hindi sentence: the line stays Hindi, the words are word errors
    j = judge("मुझे यह किताब बहुत पसंद है because it is nice", "hi")
    assert j.line_labels == ("hi",) and j.error_type == "word_error"
    assert set(j.english_words) == {"because", "nice"}


@pytest.mark.parametrize(
    ("lang", "text", "word"),
    [
        ("zh", "天空是蓝色的，因为阳光被空气散射，eventually 变成了蓝色。", "eventually"),
        (
            "ja",
            "最近の成績不振で上司に怒鳴られたことがきっかけだった。eventually、彼はキーボードを激しく叩き始めた。",
            "eventually",
        ),
        ("ru", "Небо голубое, потому что воздух рассеивает синий свет, basically всегда.", "basically"),
    ],
)
def test_english_word_inside_a_non_latin_line_is_a_word_error(lang, text, word):
    j = judge(text, lang)
    assert j.line_labels == (lang,) and j.english_words == (word,)
    assert j.error_type == "word_error" and not j.line_error


def test_word_check_is_case_sensitive_and_skips_short_words():
    assert "Python" not in en_words() and "python" in en_words()
    assert all(len(w) > 3 and w.islower() for w in list(en_words())[:1000])
    assert judge("Python 是一种非常流行的编程语言，很多人都用它来写程序。", "zh").error_type == "correct"


def test_latin_script_languages_never_have_word_errors():
    # "cause" and "diffusion" are English words too, but WPR does not exist for French
    j = judge(FR_1, "fr")
    assert {"cause", "diffusion"} <= set(j.english_words)
    assert not j.word_error and j.error_type == "correct"


def test_unknown_below_the_threshold_is_an_error_even_with_the_right_label():
    text = "mm hmm uh huh yeah"
    label, score = predict_language(text)
    assert label == "en" and 0 < score <= 0.3
    assert langid(text) == "unknown"
    j = judge(text, "en")
    assert j.line_labels == ("unknown",) and j.error_type == "full_error"


def test_newlines_never_reach_fasttext():
    assert predict_language("Bonjour à tous\net merci")[0] == "fr"


# ---- aggregation -------------------------------------------------------------------------------


def _judged(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    outputs = pd.DataFrame(rows, columns=["source", "language", "completion", "task"])
    outputs["model"], outputs["id"] = "m", range(len(outputs))
    return judge_completions(outputs)


ZH_OK = "天空是蓝色的，因为阳光被空气中的小颗粒散射了。"
ZH_WORD = "天空是蓝色的，因为阳光被空气散射，eventually 变成了蓝色。"
JA_OK = "空が青いのは、太陽の光が空気の粒にぶつかって散らばるからです。"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rows = [
        # source a: fr 2 ok + 1 line error + 1 skipped; zh 1 ok + 1 word error + 1 line error
        ("a", "fr", FR_1, "monolingual"),
        ("a", "fr", FR_2, "monolingual"),
        ("a", "fr", EN_1, "monolingual"),
        ("a", "fr", "Oui.", "monolingual"),
        ("a", "zh", ZH_OK, "monolingual"),
        ("a", "zh", ZH_WORD, "monolingual"),
        ("a", "zh", EN_1, "monolingual"),
        # source b: zh all ok; ja 1 ok + 1 line error
        ("b", "zh", ZH_OK, "monolingual"),
        ("b", "ja", JA_OK, "monolingual"),
        ("b", "ja", EN_2, "monolingual"),
        # another task is aggregated on its own
        ("a", "fr", EN_1, "crosslingual"),
    ]
    return _judged(rows)


def test_judged_flags_match_the_hand_check(table):
    assert table["error_type"].tolist() == [
        "correct",
        "correct",
        "full_error",
        "skipped",
        "correct",
        "word_error",
        "full_error",
        "correct",
        "correct",
        "full_error",
        "full_error",
    ]


def test_group_metrics_by_hand(table):
    fr = group_metrics(table[(table.source == "a") & (table.language == "fr") & (table.task == "monolingual")], "fr")
    assert (fr["n"], fr["n_scored"]) == (4, 3)  # the skipped completion leaves the denominator
    assert fr["lpr"] == pytest.approx(2 / 3) and math.isnan(fr["wpr"]) and fr["lcpr"] == pytest.approx(2 / 3)
    zh = group_metrics(table[(table.source == "a") & (table.language == "zh")], "zh")
    assert zh["lpr"] == pytest.approx(2 / 3)
    assert zh["wpr"] == pytest.approx(1 / 2)  # 1 word error among the 2 completions without a line error
    assert zh["lcpr"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))


def test_all_skipped_group_passes_as_in_the_benchmark():
    only_short = _judged([("a", "zh", "好的。", "monolingual")])
    metrics = group_metrics(only_short, "zh")
    assert metrics["n_scored"] == 0 and metrics["lpr"] == 1.0 and metrics["wpr"] == 1.0


def test_aggregation_order_is_the_benchmarks(table):
    metrics = compute_all_metrics(table).set_index(["task", "source", "language"])
    mono = metrics.loc["monolingual"]
    a_fr, a_zh, b_zh, b_ja = 2 / 3, 2 / 3, 1.0, 1 / 2  # LPR per (source, language)
    assert mono.loc[("a", "all"), "lpr"] == pytest.approx((a_fr + a_zh) / 2)
    assert mono.loc[("b", "all"), "lpr"] == pytest.approx((b_zh + b_ja) / 2)
    assert mono.loc[("all", "zh"), "lpr"] == pytest.approx((a_zh + b_zh) / 2)
    per_lang = [a_fr, (a_zh + b_zh) / 2, b_ja]
    assert mono.loc[("all", "all"), "lpr"] == pytest.approx(np.mean(per_lang))  # mean of per-language means
    # WPR: averaged only where it exists (zh a: 1/2, zh b: 1, ja b: 1 of 1 non-line-error)
    assert mono.loc[("a", "all"), "wpr"] == pytest.approx(0.5)
    assert mono.loc[("all", "all"), "wpr"] == pytest.approx(np.mean([(0.5 + 1.0) / 2, 1.0]))
    assert math.isnan(mono.loc[("all", "fr"), "wpr"])
    # LCPR per group (LPR where WPR is missing), then averaged like LPR
    lcpr_a_zh = float(lcpr(a_zh, 0.5))
    lcpr_zh = (lcpr_a_zh + float(lcpr(b_zh, 1.0))) / 2
    lcpr_ja = float(lcpr(b_ja, 1.0))
    assert mono.loc[("all", "all"), "lcpr"] == pytest.approx(np.mean([a_fr, lcpr_zh, lcpr_ja]))
    assert mono.loc[("all", "all"), "n"] == 10 and mono.loc[("all", "all"), "n_scored"] == 9
    assert metrics.loc[("crosslingual", "all", "all"), "lpr"] == 0.0
    order = [(s, lang) for s, lang in mono.index]
    assert order == [
        ("a", "fr"),
        ("a", "zh"),
        ("b", "ja"),
        ("b", "zh"),
        ("a", "all"),
        ("b", "all"),
        ("all", "fr"),
        ("all", "ja"),
        ("all", "zh"),
        ("all", "all"),
    ]


def test_bootstrap_intervals_bracket_the_estimate(table):
    metrics = compute_all_metrics(table, n_boot=300, seed=1)
    for metric in ("lpr", "lcpr"):
        assert (metrics[f"{metric}_low"] <= metrics[metric] + 1e-12).all()
        assert (metrics[metric] <= metrics[f"{metric}_high"] + 1e-12).all()
    point = compute_all_metrics(table)
    assert np.allclose(point["lpr"], metrics["lpr"])


def test_reading_completions_names_file_line_and_column(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(
        'id,model,completion,task,source,language\n0,m,"two\nlines",monolingual,a,fr\n1,m,,monolingual,a,fr\n'
    )
    table = read_completions(good)
    assert table["completion"].tolist() == ["two\nlines", ""]
    missing = tmp_path / "missing.csv"
    missing.write_text("id,model,completion,task,source\n0,m,x,monolingual,a\n")
    with pytest.raises(DataFormatError, match=r"missing.csv:1: missing column\(s\) language"):
        read_completions(missing)
    empty_lang = tmp_path / "empty.csv"
    empty_lang.write_text(
        'id,model,completion,task,source,language\n0,m,"a\nb",monolingual,a,fr\n1,m,x,monolingual,a, \n'
    )
    with pytest.raises(DataFormatError, match=r"empty.csv:4, column 6 \(language\): empty cell"):
        read_completions(empty_lang)


HAND_CHECKED = Path(__file__).resolve().parents[2] / "fixtures" / "lcb_hand_checked.csv"


@pytest.fixture(scope="module")
def hand_checked() -> pd.DataFrame:
    return pd.read_csv(HAND_CHECKED)


def test_hand_checked_completions_cover_every_lcb_language(hand_checked, lcb_folder):
    from probes.inputs.confusion_data import load_lcb, locate_lcb

    download = locate_lcb(lcb_folder)
    lcb_langs = {
        p.language for task in ("monolingual", "crosslingual") for p in load_lcb(download, task, per_language=1)
    }
    assert set(hand_checked["language"]) == lcb_langs and len(lcb_langs) == 15


def test_hand_checked_judgements_under_both_word_lists(hand_checked, lcb_folder):
    """Each completion's error type, read by hand, under the benchmark's ``words`` and under
    Debian's list; the rows where they differ are words only one list holds."""
    benchmark = read_en_words(lcb_folder / "words")
    for row in hand_checked.itertuples():
        assert judge(row.completion, row.language, words=benchmark).error_type == row.expected_lcb, row.why
        assert judge(row.completion, row.language).error_type == row.expected_debian, row.why
    differ = hand_checked[hand_checked["expected_lcb"] != hand_checked["expected_debian"]]
    assert set(differ["language"]) >= {"zh", "ko", "ru", "ja", "hi", "ar"}
    for row in differ.itertuples():
        word = next(w for w in row.why.split() if w.isascii() and w.islower())
        assert (word in benchmark) != (word in en_words()), row.why


def test_the_word_list_changes_wpr_as_counted_by_hand(hand_checked, lcb_folder):
    outputs = hand_checked[["id", "model", "completion", "task", "source", "language"]].astype(str)
    with_lcb = compute_all_metrics(judge_completions(outputs, read_en_words(lcb_folder / "words"))).set_index(
        ["task", "source", "language"]
    )
    with_debian = compute_all_metrics(judge_completions(outputs)).set_index(["task", "source", "language"])
    # Korean: 3 completions without a line error; 'walking' in both lists, 'apps' in Debian's only
    assert with_lcb.loc[("monolingual", "native", "ko"), "wpr"] == pytest.approx(2 / 3)
    assert with_debian.loc[("monolingual", "native", "ko"), "wpr"] == pytest.approx(1 / 3)
    # Chinese cross-lingual: one English line (LPR 1/2); 'cypher' only in the benchmark's list
    assert with_lcb.loc[("crosslingual", "okapi", "zh"), "lpr"] == pytest.approx(0.5)
    assert with_lcb.loc[("crosslingual", "okapi", "zh"), "wpr"] == 0.0
    assert with_debian.loc[("crosslingual", "okapi", "zh"), "wpr"] == 1.0
    # Latin-script languages have no WPR whatever the list
    assert with_lcb.loc[("monolingual", "okapi", "fr"), ["wpr"]].isna().all()


def test_paper_table_is_the_per_language_rows_in_percent(table):
    metrics = compute_all_metrics(table)
    layout = paper_table(metrics, "lpr")
    assert list(layout.columns[:3]) == ["task", "model", "avg"]
    per_language = metrics[metrics["source"] == "all"].set_index(["task", "model", "language"])
    for record in layout.itertuples(index=False):
        row = record._asdict()
        assert row["avg"] == pytest.approx(round(100 * per_language.loc[(row["task"], row["model"], "all"), "lpr"], 1))
        for lang in layout.columns[3:]:
            expected = per_language["lpr"].get((row["task"], row["model"], lang), np.nan)
            assert (math.isnan(row[lang]) and math.isnan(expected)) or row[lang] == pytest.approx(
                round(100 * expected, 1)
            )


PAPER_CSV = Path(__file__).resolve().parents[3] / "results" / "confusion" / "lcb" / "paper_table3.csv"
PAPER_TEXT = Path(__file__).resolve().parents[3] / ".." / "shared" / "specs" / "seeds" / "003_0cc41d05341dc272.txt"


def test_paper_numbers_are_consistent_with_their_own_averages():
    """Each released LPR average is the mean of the same row's languages (to the paper's
    rounding), except one row of the paper's own Table 3: Llama 3.1 70B-I cross-lingual
    prints 81.4 where its 14 languages average 82.1."""
    paper = pd.read_csv(PAPER_CSV)
    lpr = paper[paper["metric"] == "lpr"]
    off = {}
    for (model, task), rows in lpr.groupby(["model", "task"]):
        per_language = rows[rows["language"] != "avg"]["value"]
        assert len(per_language) == (15 if task == "monolingual" else 14), (model, task)
        printed = float(rows[rows["language"] == "avg"]["value"].iloc[0])
        if abs(per_language.mean() - printed) > 0.1:
            off[(model, task)] = round(per_language.mean(), 1)
    assert off == {("Llama 3.1 70B-I", "crosslingual"): 82.1}


@pytest.mark.skipif(not PAPER_TEXT.is_file(), reason=f"the paper's text is not beside the repository ({PAPER_TEXT})")
def test_paper_csv_is_what_the_paper_text_says():
    from analyses.stats.confusion_metrics import read_paper_table3

    paper = pd.read_csv(PAPER_CSV)
    extracted = read_paper_table3(PAPER_TEXT.read_text(encoding="utf-8"), paper["source"].iloc[0])
    pd.testing.assert_frame_equal(extracted, paper)
