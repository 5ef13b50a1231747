"""Model loading: local folders, embedded-model cache, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from probes.backend import load, models
from probes.backend.errors import ModelNotFoundError


def test_local_folder_loads_through_the_real_from_pretrained_path(tiny_model_folder):
    backend = load(str(tiny_model_folder))
    assert backend.model_name == "tiny-llama" and backend.n_layers == 3
    assert backend.weights_hash.startswith("files-sha256:")
    assert backend.weights_hash == load(str(tiny_model_folder), backend="nnsight").weights_hash


def test_provenance_says_where_the_weights_came_from_without_machine_paths(tiny_model_folder, fake_embedded):
    described = load(str(tiny_model_folder)).describe()
    assert described["model_source"] == "local folder tiny-llama"
    assert str(tiny_model_folder.parent) not in json.dumps(described)
    folder = models.ensure_embedded("tiny-embedded")
    assert models.weights_origin(str(folder)).startswith("embedded")
    assert models.weights_origin("google/gemma-3-270m", "abc123") == "hub google/gemma-3-270m at revision abc123"


def test_a_hub_models_weights_hash_and_origin_hold_the_resolved_commit(monkeypatch):
    from tests.conftest import tiny_hf_model, tiny_tokenizer

    def hub_load(spec, **kwargs):
        model = tiny_hf_model("llama")
        model.config._commit_hash = "abc123"  # what transformers records for a hub download
        return model, tiny_tokenizer(), spec, spec

    monkeypatch.setattr(models, "load_hf", hub_load)
    backend = load("owner/name")
    assert backend.weights_hash == "hub:owner/name@abc123" != models.weights_fingerprint("owner/name", "def456")
    assert backend.describe()["model_source"] == "hub owner/name at revision abc123"


def test_missing_folder_and_unknown_name_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown model.*pivotlens models"):
        models.resolve_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        models.resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        models.resolve_model(str(tmp_path / "empty"))
    assert models.resolve_model("google/gemma-3-270m") == ("google/gemma-3-270m", "google/gemma-3-270m")


def test_bad_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dtype 'f8'"):
        models.torch_dtype("f8")


@pytest.fixture
def fake_embedded(monkeypatch, tmp_path, tiny_model_folder):
    """An embedded model whose 'conversion' copies a tiny saved model and counts its calls."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def convert(model, target):
        calls.append(model.name)
        time.sleep(0.5)  # long enough for a second caller to arrive while we hold the lock
        tmp = target.with_name(target.name + ".tmp")
        import shutil

        shutil.copytree(tiny_model_folder, tmp)
        models.seal_cache(tmp, {"gguf_sha256": "0" * 64})
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    fake = models.EmbeddedModel("tiny-embedded", "json", "json", "LlamaForCausalLM", "test", lambda: tmp_path, 3)
    monkeypatch.setitem(models.EMBEDDED, fake.name, fake)
    monkeypatch.setattr(models, "_convert_embedded", convert)
    return calls


def test_concurrent_callers_convert_once(fake_embedded):
    threads = [threading.Thread(target=models.ensure_embedded, args=("tiny-embedded",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_embedded == ["tiny-embedded"]


def test_partial_or_corrupt_cache_is_rebuilt(fake_embedded):
    folder = models.ensure_embedded("tiny-embedded")
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="incomplete or corrupt"):
        models.ensure_embedded("tiny-embedded")
    assert fake_embedded == ["tiny-embedded", "tiny-embedded"]
    (folder / models.MANIFEST).unlink()  # conversion died before the manifest was written
    with pytest.warns(UserWarning):
        models.ensure_embedded("tiny-embedded")
    assert len(fake_embedded) == 3
    assert load("tiny-embedded").weights_hash == "gguf-sha256:" + "0" * 64


@pytest.mark.parametrize("damage", ["zero", "flip"])
@pytest.mark.parametrize("file", ["model.safetensors", "config.json", "tokenizer.json"])
def test_same_size_damage_to_weights_config_or_tokenizer_is_rebuilt(fake_embedded, file, damage):
    from tests.probes.backend.test_store import damage_file

    folder = models.ensure_embedded("tiny-embedded")
    damage_file(folder / file, damage)
    assert "sha256" in models.cache_problem(folder)
    with pytest.warns(UserWarning, match="does not match its recorded sha256"):
        models.ensure_embedded("tiny-embedded")
    assert models.cache_problem(folder) is None and len(fake_embedded) == 2


def test_unchanged_cache_is_not_hashed_again(fake_embedded, monkeypatch):
    folder = models.ensure_embedded("tiny-embedded")
    monkeypatch.setattr(models, "_sha256", lambda path: pytest.fail(f"hashed {path.name} again"))
    assert models.cache_problem(folder) is None


def test_killed_conversion_leaves_nothing_after_the_next_load(fake_embedded):
    folder = models.ensure_embedded("tiny-embedded")
    stale = folder.with_name(folder.name + ".tmp-99999")
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    models.ensure_embedded("tiny-embedded")
    assert not stale.exists() and len(fake_embedded) == 1


def test_a_second_process_says_it_waits_for_the_cache_lock(fake_embedded, capfd):
    target = models.embedded_cache_path("tiny-embedded")
    target.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import filelock, time; lock = filelock.FileLock({str(target) + '.lock'!r}); lock.acquire(); "
            f"print('held', flush=True); time.sleep(1)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    models.ensure_embedded("tiny-embedded")
    holder.wait(10)
    holder.stdout.close()
    assert "waiting for the cache lock" in capfd.readouterr().err


@pytest.mark.slow
def test_embedded_models_are_cached_as_plain_safetensors():
    for name in models.EMBEDDED:
        folder = models.ensure_embedded(name)
        config = json.loads((folder / "config.json").read_text())
        assert "quantization_config" not in config and config["architectures"]
        assert (folder / models.MANIFEST).is_file()
