"""The per-language corpus: validation, the documented split by id, and next-token labels."""

from __future__ import annotations

import pytest
import torch

from probes.backend.base import encode_ids
from probes.backend.errors import DataFormatError
from probes.inputs.lm_corpus import SENTENCES, is_heldout, lm_batches, load_corpus, next_token_labels
from tests.conftest import tiny_backend


def test_the_shipped_corpus_splits_by_id_into_disjoint_parallel_parts():
    corpus = load_corpus(SENTENCES)
    assert {"en", "ar", "es", "ru", "zh", "ko", "vi"} <= set(corpus.langs)
    ids = {lang: [sid for sid, _ in corpus.sentences[lang]] for lang in corpus.langs}
    held = {sid for sid in ids["en"] if is_heldout(sid)}
    assert 0.1 < len(held) / len(ids["en"]) < 0.3
    for lang in corpus.langs:
        assert len(corpus.texts(lang, "heldout")) + len(corpus.texts(lang, "accumulation")) == len(corpus.texts(lang))
        assert {sid for sid in ids[lang] if is_heldout(sid)} == held & set(ids[lang])  # the same ids in every language
        assert not set(corpus.texts(lang, "heldout")) & set(corpus.texts(lang, "accumulation"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,language,text\n1,en,Hello there\n", "header must be id,lang,text"),
        ("id,lang,text\n1,xx,Hello there\n", "line 2|:2, column 2"),
        ("id,lang,text\n1,en,Hello there\n1,en,Hi again\n", "already on line 2"),
        ("id,lang,text\n1,en,\n", ":2, column 3: empty cell"),
        ("id,lang,text\n1,en,Hello,there\n", "4 fields"),
    ],
)
def test_bad_files_name_the_line_and_the_fix(tmp_path, content, message):
    path = tmp_path / "s.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        load_corpus(path)


def test_missing_language_and_file_fail_clearly(tmp_path):
    corpus = load_corpus(SENTENCES)
    with pytest.raises(DataFormatError, match="no sentences in 'fa'"):
        corpus.texts("fa")  # Persian: a registered language the data does not hold
    with pytest.raises(DataFormatError, match="no such file"):
        load_corpus(tmp_path / "missing.csv")


def test_labels_skip_padding_and_each_rows_first_token():
    enc = encode_ids([[5, 6, 7, 8], [9, 10]], pad_id=0)
    assert next_token_labels(enc).tolist() == [[-100, 6, 7, 8], [-100, -100, -100, 10]]


def test_batches_truncate_sort_and_drop_single_tokens():
    backend = tiny_backend("llama")
    texts = ["the cloud is white and the river is long", "le nuage", "a"]
    batches = list(lm_batches(backend, texts, batch_size=2, max_tokens=4))
    assert sum(b.n_sentences for b in batches) == len([t for t in texts if len(backend.tokenize(t)) >= 2])
    assert all(b.enc.input_ids.shape[1] <= 4 for b in batches)
    lengths = [int(m.sum()) for b in batches for m in b.enc.attention_mask]
    assert lengths == sorted(lengths)
    assert batches[0].n_tokens == int((batches[0].labels != -100).sum()) and isinstance(batches[0].labels, torch.Tensor)
