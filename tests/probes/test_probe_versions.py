"""A probe's ``version`` (declared in ``register_probe``) is part of every stored run's key, so it
must change whenever the probe's numbers change. Each probe below runs on a fixed tiny model; the
sha256 of its rounded output table is kept in ``probe_golden.json`` with the version it was
computed under. A changed table under an unchanged version fails. Every built-in probe has a run
here; where a random model would never write what a probe reads (numbers, an end of answer, a
switch to English), the run uses the tiny model with those tokens favoured.

After a deliberate change: bump ``version=`` in the probe's ``register_probe`` and regenerate with
``PIVOTLENS_REGENERATE_GOLDEN=1 python -m pytest tests/probes/test_probe_versions.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from probes.arithmetic import run_arithmetic
from probes.backend import Backend, wrap
from probes.backend.lenses import LOGIT, Lens
from probes.confusion import run_confusion, run_confusion_lens
from probes.exit_accuracy import exit_accuracy
from probes.importance import run_importance
from probes.inputs.confusion_data import ConfusionPrompt
from probes.inputs.instruction_data import load_instructions
from probes.inputs.prompts import build_prompts
from probes.instruction_answers import run_answers
from probes.interference import instruction_pairs, run_interference
from probes.lens import run_lens
from probes.lens_eval import lens_eval
from probes.perplexity import run_perplexity
from probes.registry import PROBES
from tests import FIXTURES
from tests.conftest import CORPUS, tiny_backend, tiny_hf_model, tiny_tokenizer
from tests.probes.test_exit_accuracy import tiny_data

GOLDEN = Path(__file__).with_name("probe_golden.json")
WORDS = pd.DataFrame(
    {
        "concept": ["cloud", "river", "white"],
        "en": ["cloud", "river", "white"],
        "fr": ["nuage", "rivière", "blanc"],
        "de": ["Wolke", "Fluss", "weiß"],
    }
)


def _lens():
    return run_lens(tiny_backend("llama"), build_prompts("translation", WORDS, "de", src="fr"), progress=False)


def _importance():
    return run_importance(tiny_backend("llama"), {"fr": CORPUS[1:10:5]}, progress=False)


def _perplexity():
    return run_perplexity(tiny_backend("llama"), {"fr": CORPUS[1:10:5], "de": CORPUS[2:10:5]}, progress=False)


def _interference():
    backend = tiny_backend("llama")
    pairs = instruction_pairs(
        backend, load_instructions(FIXTURES / "parallel_instructions.csv"), "en", "fr", k=1, batch_size=2
    )
    return run_interference(backend, pairs, progress=False)


def _exit():
    return exit_accuracy(tiny_backend("llama"), "tiny", "en", shots=2, n=None, data=tiny_data(), progress=False)


def _tiny_llama_favouring(favoured: dict[int, float]) -> Backend:
    """The tiny llama with ``favoured[t]`` added to every weight of token ``t``'s unembedding row:
    a fixed model whose text holds those tokens (numbers, English and German words, an early end
    of answer) where the random one never writes them, so that how a probe reads them enters its
    table."""
    model = tiny_hf_model("llama")
    with torch.no_grad():
        for token_id, by in favoured.items():
            model.lm_head.weight[token_id] += by
    return wrap(model, tiny_tokenizer(), model_name="tiny-llama-favouring")


CONFUSION_PROMPTS = [
    ConfusionPrompt("monolingual", "t", "zh", "云是白色的", 0),
    ConfusionPrompt("monolingual", "t", "fr", "le nuage est blanc", 0),
    ConfusionPrompt("crosslingual", "t", "de", "the river is long. Reply in German.", 0, "End", "reply in {language}"),
]


def _english_favouring() -> Backend:
    """A model that favours English words and, more, German ``und``, so that the Chinese answers
    switch to Latin letters: at ``und`` under the Chinese rule, at the first English word under
    fastText's."""
    tokenizer = tiny_tokenizer()
    english = tokenizer.convert_tokens_to_ids(["Ġthe", "Ġcloud", "Ġis", "Ġwhite", "Ġriver", "Ġlong", "Ġand"])
    return _tiny_llama_favouring({**dict.fromkeys(english, 0.3), tokenizer.convert_tokens_to_ids("Ġund"): 0.4})


def _confusion_steps(**sampling) -> pd.DataFrame:
    return run_confusion(_english_favouring(), CONFUSION_PROMPTS, max_new_tokens=12, progress=False, **sampling)


def _confusion():
    """Sampled at the benchmark's defaults (seeded) and decoded greedily: both paths of the probe."""
    return pd.concat([_confusion_steps(), _confusion_steps(temperature=0.0)], keys=["sampled", "greedy"]).reset_index(
        level=0, names="decoding"
    )


def _confusion_lens():
    steps = _confusion_steps(temperature=0.0)
    assert steps["is_confusion_point"].any(), "the lens needs a confusion point to read"
    return run_confusion_lens(_english_favouring(), steps, top_k=3, progress=False)


def _arithmetic():
    digits = [i for token, i in tiny_tokenizer().get_vocab().items() if token.isascii() and token.isdigit()]
    problems = pd.DataFrame(
        {
            "id": ["1", "2", "1", "2"],
            "lang": ["en", "en", "fr", "fr"],
            "kind": ["add", "mul"] * 2,
            "question": [
                "Tom has 3 apples and buys 4 more. How many apples does he have?",
                "A box holds 6 books. How many books are in 5 boxes?",
                "Tom a 3 pommes et en achète 4. Combien de pommes a-t-il ?",
                "Une boîte contient 6 livres. Combien de livres y a-t-il dans 5 boîtes ?",
            ],
            "answer": [7, 30, 7, 30],
        }
    )
    backend = _tiny_llama_favouring(dict.fromkeys(digits, 0.5))
    return run_arithmetic(backend, problems, batch_size=2, max_new_tokens=8, progress=False)


def _instruction_answers():
    table = load_instructions(FIXTURES / "parallel_instructions.csv")
    backend = _tiny_llama_favouring({tiny_tokenizer().eos_token_id: -0.25})
    return run_answers(backend, table, ["en", "fr"], ["0", "1", "2"], max_new_tokens=6, batch_size=2, progress=False)


def _lens_eval():
    backend = tiny_backend("llama")
    d_model = backend.d_model
    generator = torch.Generator().manual_seed(0)
    weight = torch.eye(d_model) + 0.1 * torch.randn(backend.n_layers, d_model, d_model, generator=generator)
    linear = Lens("linear", "linear-seeded", weight, 0.1 * torch.randn(backend.n_layers, d_model, generator=generator))
    rows = {lang: [backend.tokenize(text) for text in CORPUS[i:10:5]] for lang, i in (("fr", 1), ("de", 2))}
    return lens_eval(backend, [LOGIT, linear], rows, batch_size=2, progress=False)


RUNS = {
    "lens": _lens,
    "importance": _importance,
    "perplexity": _perplexity,
    "interference": _interference,
    "exit": _exit,
    "confusion": _confusion,
    "confusion-lens": _confusion_lens,
    "arithmetic": _arithmetic,
    "instruction-answers": _instruction_answers,
    "lens-eval": _lens_eval,
}


def test_every_builtin_probe_has_a_golden_run():
    builtin = {name for name, spec in PROBES.parts().items() if spec.run.__module__.startswith("probes.")}
    assert builtin <= set(RUNS), f"add a run of {sorted(builtin - set(RUNS))} to RUNS and regenerate"


def table_digest(table: pd.DataFrame) -> str:
    """sha256 of the table with floats rounded to 4 significant digits, rows and columns sorted."""
    table = table[sorted(table.columns)].copy()
    for column in table.columns:
        if pd.api.types.is_float_dtype(table[column]):
            table[column] = table[column].map(lambda v: f"{v:.4g}")
        else:
            table[column] = table[column].astype(str)
    table = table.sort_values(list(table.columns)).reset_index(drop=True)
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


@pytest.mark.parametrize("probe", sorted(RUNS))
def test_numbers_change_only_with_the_version(probe):
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    version, digest = PROBES.get(probe).version, table_digest(RUNS[probe]())
    if os.environ.get("PIVOTLENS_REGENERATE_GOLDEN"):
        golden[probe] = {"version": version, "sha256": digest}
        GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=2) + "\n")
        return
    stored = golden.get(probe)
    assert stored is not None, f"no golden table for {probe}; regenerate (see this file's docstring)"
    if stored["version"] == version:
        assert stored["sha256"] == digest, (
            f"{probe}'s numbers changed but its version is still {version}: bump version= in its register_probe "
            "and regenerate the golden tables (see this file's docstring)"
        )
    else:
        pytest.fail(f"{probe} is now version {version} (golden: {stored['version']}); regenerate the golden tables")
