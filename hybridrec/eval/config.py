"""Benchmark configuration: what to run, read from a JSON or TOML file or built in code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROTOCOLS = ("full-ranking", "sampled", "pairwise-auc", "cold-start")


@dataclass(frozen=True)
class RecommenderSpec:
    """One recommender in a benchmark: registry name, parameters and the label in tables."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark run.

    Attributes:
        datasets: dataset names or paths (see :func:`hybridrec.load_dataset`).
        protocols: any of ``full-ranking`` (leave-one-out, ranked against every item),
            ``sampled`` (1 positive + ``negatives`` sampled negatives, uniform and
            popularity-matched), ``pairwise-auc`` (TALLRec-style (history, candidate) pairs with
            the rating baselines) and ``cold-start`` (users held out entirely).
        recommenders: what to compare; ``["all"]`` means every registered recommender.
        k: cut-offs for the ranking metrics.
        seeds: one run per seed (user sample, negatives, random recommender, cold-start users).
        users: evaluate a random sample of this many test users (None = all).
        negatives: negatives per positive in the sampled protocol.
        history_len: history length in the pairwise-auc protocol.
        pairs_per_user: at most this many (latest) pairs per user in the pairwise-auc protocol.
        cold_start_frac: share of users held out in the cold-start protocol.
        baseline: label of the recommender the others are tested against.
        bootstrap: bootstrap resamples for confidence intervals.
        latency_requests: one-at-a-time requests timed per recommender (after warm-up).
        latency_warmup: untimed warm-up requests.
        latency_batch: users per batch in the batched throughput measurement.

    Example:
        >>> BenchConfig(datasets=["ml-latest-small"], recommenders=[RecommenderSpec("ease")]).k
        (10, 20)
    """

    datasets: tuple[str, ...] = ("ml-latest-small",)
    protocols: tuple[str, ...] = ("full-ranking", "sampled", "pairwise-auc", "cold-start")
    recommenders: tuple[RecommenderSpec, ...] = (RecommenderSpec("all"),)
    k: tuple[int, ...] = (10, 20)
    seeds: tuple[int, ...] = (0,)
    users: int | None = None
    negatives: int = 19
    history_len: int = 10
    pairs_per_user: int = 10
    cold_start_frac: float = 0.1
    baseline: str = "popularity"
    bootstrap: int = 1000
    latency_requests: int = 200
    latency_warmup: int = 10
    latency_batch: int = 64

    def __post_init__(self) -> None:
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
        if not self.k or min(self.k) < 1:
            raise ValueError("k must list positive cut-offs")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        labels = [r.label for r in self.recommenders]
        if len(set(labels)) != len(labels):
            raise ValueError(f"recommender labels must be unique: {labels}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        """Build from a plain mapping (as read from JSON or TOML); recommenders may be names."""
        data = dict(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown benchmark config key(s): {', '.join(sorted(unknown))}")
        recs = []
        for r in data.pop("recommenders", ["all"]):
            recs.append(RecommenderSpec(r) if isinstance(r, str) else RecommenderSpec(**r))
        for key in ("datasets", "protocols", "k", "seeds"):
            if key in data:
                value = data[key]
                data[key] = tuple(value) if isinstance(value, list | tuple) else (value,)
        return cls(recommenders=tuple(recs), **data)

    @classmethod
    def from_file(cls, path: str | Path) -> BenchConfig:
        """Read a ``.json`` or ``.toml`` benchmark config."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def quick(cls) -> BenchConfig:
        """The small run used by the demo and CI: 200 users, one seed, the fast protocols."""
        return cls(
            protocols=("full-ranking", "sampled", "pairwise-auc", "cold-start"),
            k=(10,),
            users=200,
            bootstrap=200,
            latency_requests=50,
            latency_warmup=5,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_recommenders(self, specs: tuple[RecommenderSpec, ...]) -> BenchConfig:
        data = self.to_dict()
        data["recommenders"] = [asdict(s) for s in specs]
        return BenchConfig.from_dict(data)
