"""The benchmark harness: every recommender on every protocol, side by side, with statistics.

One recommender's failure is recorded in its row and the others still run. Per-user metric
arrays are kept (``per_user.npz``) so confidence intervals and paired tests can be recomputed.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.data.dataset import Dataset
from hybridrec.errors import HybridrecError
from hybridrec.eval import stats
from hybridrec.eval.config import BenchConfig, ConfigError, RecommenderSpec, dataset_label
from hybridrec.eval.cost import latency, measure
from hybridrec.eval.protocols import Evaluation, FullRanking, PairwiseAUC, build_protocols
from hybridrec.persistence import library_versions

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def expand_recommenders(specs: tuple[RecommenderSpec, ...]) -> tuple[RecommenderSpec, ...]:
    """Replace the special name ``all`` by every registered recommender with default params
    (except those that set ``in_all = False``: the language-model stages)."""
    from hybridrec.registry import available, get

    explicit = [spec for spec in specs if spec.name != "all"]
    labels = {spec.label for spec in explicit}
    out: list[RecommenderSpec] = []
    for spec in specs:
        if spec.name != "all":
            out.append(spec)
            continue
        # the two reference baselines first, then by name; an explicit spec of the same
        # name (with its own parameters) wins over the default one "all" would add
        first = {"random": 0, "popularity": 1}
        names = sorted(
            (n for n in available() if get(n).in_all), key=lambda n: (first.get(n, 2), n)
        )
        out.extend(RecommenderSpec(name) for name in names if name not in labels)
    seen: dict[str, RecommenderSpec] = {}
    for spec in out:
        seen.setdefault(spec.label, spec)
    return tuple(seen.values())


def check_recommenders(config: BenchConfig) -> None:
    """Check that every recommender of ``config`` (``all`` expanded) is registered.

    Meant for before any dataset is loaded: :func:`run_benchmark` itself records an unknown
    name as a failed row and runs the others. Only names are checked; a recommender whose
    optional dependency is missing still fails in its own rows.

    Raises:
        RegistryError: an unknown name; the message lists the known ones.

    Example:
        >>> check_recommenders(BenchConfig(recommenders=("popularity",)))
    """
    from hybridrec.registry import RegistryError, entries, get

    known = entries()
    names = [spec.name for spec in expand_recommenders(config.recommenders)]
    unknown = list(dict.fromkeys(name for name in names if name not in known))
    if len(unknown) == 1:
        get(unknown[0])  # raises the registry's own message
    if unknown:
        raise RegistryError(
            f"unknown recommenders {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(known))}"
        )


def _create(spec: RecommenderSpec, seed: int) -> Any:
    from hybridrec.registry import create, get

    params = dict(spec.params)
    cls = get(spec.name)
    if "seed" in inspect.signature(cls.__init__).parameters:
        params.setdefault("seed", seed)
    return create(spec.name, **params)


def git_commit() -> str | None:
    """The commit of the hybridrec checkout, when it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def script_command(root: Path) -> str:
    """The command that ran the current script, relative to ``root`` (for benchmark reports)."""
    import sys

    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(root)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def environment() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": library_versions(
            "torch",
            "transformers",
            "sentence-transformers",
            "faiss-cpu",
            "peft",
            "langchain-core",
            "scikit-learn",
        ),
        "git_commit": git_commit(),
    }


def _summarise(
    ev: Evaluation, baseline: Evaluation | None, resamples: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Means with bootstrap CIs, and paired tests against the baseline's per-user arrays.

    ``versus[metric]`` holds the raw p-values of one comparison (``p_ttest`` and
    ``p_wilcoxon`` for per-user metrics, ``p_bootstrap`` for the global pair-wise AUC);
    :func:`hybridrec.eval.report.annotate_significance` adds the Holm adjustment, which needs
    every row of a table.
    """
    metrics: dict[str, Any] = {}
    versus: dict[str, Any] = {}
    for name, values in ev.per_user.items():
        lo, hi = stats.bootstrap_ci(values, resamples=resamples, seed=seed)
        valid = values[~np.isnan(values)]
        metrics[name] = {
            "mean": float(valid.mean()) if len(valid) else float("nan"),
            "ci_low": lo,
            "ci_high": hi,
            "n": int(len(valid)),
        }
        if baseline is not None and name in baseline.per_user:
            versus[name] = stats.paired_test(values, baseline.per_user[name])
    for name, value in ev.scalars.items():
        metrics[name] = {"mean": float(value), "ci_low": None, "ci_high": None, "n": None}
    if ev.pairwise is not None:
        from hybridrec.eval.metrics import global_auc

        scores, labels, users = ev.pairwise
        n_users = int(len(np.unique(users)))
        lo, hi, p = _pairwise_bootstrap(ev.pairwise, baseline, resamples, seed)
        model_auc = float(global_auc(scores, labels))
        metrics.setdefault("auc", {"mean": model_auc})
        metrics["auc"].update(ci_low=lo, ci_high=hi, n=n_users)
        base = baseline.pairwise if baseline is not None else None
        if base is not None and base[0].shape == scores.shape:
            versus["auc"] = {
                "diff": model_auc - float(global_auc(base[0], labels)),
                "p_bootstrap": p,
                "n": n_users,
            }
    return metrics, versus


def _pairwise_bootstrap(
    pairwise: tuple[np.ndarray, np.ndarray, np.ndarray],
    baseline: Evaluation | None,
    resamples: int,
    seed: int,
) -> tuple[float, float, float]:
    """CI of the global AUC by resampling users; two-sided paired p-value against the baseline.

    Users (all pairs of a user together) are drawn with replacement; a resample whose pairs are
    all of one label has no AUC and is skipped. The same seed draws the same users for every
    recommender, so the baseline's AUC is computed on exactly the resampled pairs of the model.
    The interval is the percentile one; the p-value is ``2 * min(P(d <= 0), P(d >= 0))`` of
    the resampled differences ``d = AUC(model) - AUC(baseline)``, each proportion counted as
    ``(hits + 1) / (valid resamples + 1)`` so that a finite number of resamples never claims
    ``p = 0``.

    Returns:
        ``(ci_low, ci_high, p)``; all NaN when no resample has both labels, ``p`` NaN without
        a baseline (or one scored on different pairs).
    """
    base = baseline.pairwise[0] if baseline is not None and baseline.pairwise else None
    aucs, diffs = _bootstrap_users(pairwise, base, resamples, seed)
    if not len(aucs):
        return float("nan"), float("nan"), float("nan")
    lo, hi = np.quantile(aucs, [0.025, 0.975])
    return float(lo), float(hi), _two_sided_p(diffs)


def auc_difference(
    pairwise: tuple[np.ndarray, np.ndarray, np.ndarray],
    baseline_scores: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Global AUC of ``pairwise`` minus that of ``baseline_scores`` on the same pairs.

    Returns ``diff``, its 95% percentile interval over users resampled with replacement
    (``ci_low``, ``ci_high``) and the two-sided bootstrap ``p`` (as :func:`_pairwise_bootstrap`).
    """
    from hybridrec.eval.metrics import global_auc

    scores, labels, _ = pairwise
    _, diffs = _bootstrap_users(pairwise, baseline_scores, resamples, seed)
    lo, hi = np.quantile(diffs, [0.025, 0.975]) if len(diffs) else (np.nan, np.nan)
    return {
        "diff": float(global_auc(scores, labels) - global_auc(baseline_scores, labels)),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p": _two_sided_p(diffs),
    }


def _bootstrap_users(
    pairwise: tuple[np.ndarray, np.ndarray, np.ndarray],
    base: np.ndarray | None,
    resamples: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of user-resampled pairs and, with ``base``, the paired differences to it."""
    from hybridrec.eval.metrics import global_auc

    scores, labels, users = pairwise
    if base is not None and base.shape != scores.shape:
        logger.warning("baseline has %d pair scores, not %d: no p-value", len(base), len(scores))
        base = None
    # the pair indices of each user, users in sorted order, indices ascending within a user
    order = np.argsort(users, kind="stable")
    _, starts = np.unique(users[order], return_index=True)
    groups = np.split(order, starts[1:]) if len(order) else []
    rng = np.random.default_rng(seed)
    aucs, diffs = [], []
    for _ in range(resamples if groups else 0):
        idx = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        if len(np.unique(labels[idx])) < 2:
            continue
        a = global_auc(scores[idx], labels[idx])
        aucs.append(a)
        if base is not None:
            diffs.append(a - global_auc(base[idx], labels[idx]))
    return np.asarray(aucs, dtype=np.float64), np.asarray(diffs, dtype=np.float64)


def _two_sided_p(diffs: np.ndarray) -> float:
    """``2 * min(P(d <= 0), P(d >= 0))`` with add-one counts; NaN without differences."""
    if not len(diffs):
        return float("nan")
    below = (np.count_nonzero(diffs <= 0) + 1) / (len(diffs) + 1)
    above = (np.count_nonzero(diffs >= 0) + 1) / (len(diffs) + 1)
    return float(min(1.0, 2 * min(below, above)))


def run_benchmark(
    config: BenchConfig,
    *,
    progress: bool = False,
    load: Callable[..., Dataset] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run a benchmark; returns the results document and the per-user arrays.

    Args:
        config: what to run.
        progress: show progress bars.
        load: dataset loader (default :func:`hybridrec.load_dataset`), called with a dataset
            string as given, or with a mapping's ``path`` (else ``name``) and its other keys
            (``label`` aside) as keyword arguments.
        on_row: called with each finished result row (the CLI prints them as they come).

    Example:
        >>> from hybridrec.eval.config import BenchConfig
        >>> results, arrays = run_benchmark(BenchConfig.quick())  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if load is None:
        from hybridrec.data import load_dataset as load
    specs = expand_recommenders(config.recommenders)
    labels = [s.label for s in specs]
    baseline_label = config.baseline if config.baseline in labels else None
    started = time.time()
    rows: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    protocol_docs: dict[str, dict[str, Any]] = {}
    dataset_docs: dict[str, Any] = {}
    # every dataset first: a bad path or option fails before any long work
    loaded = [_load_entry(entry, i, load) for i, entry in enumerate(config.datasets)]
    for ds_name, dataset in loaded:
        dataset_docs[ds_name] = dataset.info()
        for seed in config.seeds:
            protocols, skipped = build_protocols(dataset, config, seed)
            for name, reason in skipped.items():
                row = _row(name, "(protocol)", "", {}, seed, status="skipped", error=reason)
                row["dataset"] = ds_name
                rows.append(row)
                protocol_docs.setdefault(name, {"name": name, "description": f"skipped: {reason}"})
            groups: dict[str, list] = {}
            for proto in protocols:
                groups.setdefault(proto.fit_key, []).append(proto)
                protocol_docs[proto.name] = proto.summary()
            evaluations: dict[tuple[str, str], Evaluation] = {}
            pending: list[dict[str, Any]] = []
            for protos in groups.values():
                desc = f"{ds_name} {protos[0].fit_key}"
                for spec in tqdm(specs, disable=not progress, desc=desc):
                    pending.extend(_run_one(spec, protos, seed, config, progress, evaluations))
                for proto in protos:
                    if isinstance(proto, PairwiseAUC):
                        for label, ev in proto.rating_baselines().items():
                            evaluations[(proto.name, label)] = ev
                            pending.append(
                                _row(
                                    proto.name,
                                    label,
                                    label,
                                    {},
                                    seed,
                                    status="ok",
                                    kind="rating-baseline",
                                )
                            )
            for row in pending:  # summaries need the baseline's evaluation, so they come last
                row["dataset"] = ds_name
                ev = evaluations.get((row["protocol"], row["recommender"]))
                if ev is not None:
                    base = evaluations.get((row["protocol"], baseline_label or ""))
                    if row["recommender"] == baseline_label:
                        base = None
                    row["metrics"], row["vs_baseline"] = _summarise(
                        ev, base, config.bootstrap, seed
                    )
                    if row.get("candidates"):  # its AUC counts only its own list's items
                        row["vs_baseline"].pop("auc", None)
                    key = f"{ds_name}|{row['protocol']}|seed={seed}|{row['recommender']}"
                    for metric, values in ev.per_user.items():
                        arrays[f"{key}|{metric}"] = values
                    if ev.pairwise is not None:
                        arrays[f"{key}|pair_scores"] = ev.pairwise[0]
                        arrays[f"{key}|pair_labels"] = ev.pairwise[1]
                        arrays[f"{key}|pair_users"] = ev.pairwise[2]
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    results = {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "recommenders": [{"label": s.label, "name": s.name, "params": s.params} for s in specs],
        "baseline": baseline_label,
        "protocols": protocol_docs,
        "datasets": dataset_docs,
        "environment": environment(),
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "duration_s": time.time() - started,
        "rows": rows,
    }
    return results, arrays


def _load_entry(
    entry: str | dict[str, Any], index: int, load: Callable[..., Dataset]
) -> tuple[str, Dataset]:
    """A config's dataset entry loaded, with its label (see :func:`dataset_label`).

    A mapping is ``load(path or name, **other keys)``; an option the loader or the format does
    not take (a ``TypeError``) or a bad option value (a plain ``ValueError``) becomes a
    :class:`ConfigError` naming the entry. Data errors (:class:`DataError`) pass unchanged.
    """
    label = dataset_label(entry)
    if isinstance(entry, str):
        return label, load(entry)
    options = {k: v for k, v in entry.items() if k not in ("path", "label")}
    if "path" in entry:
        source = entry["path"]
    else:
        source = options.pop("name")
    try:
        return label, load(source, **options)
    except HybridrecError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError([f"datasets[{index}] ({label!r}): {err}"]) from err


def _row(
    protocol: str, label: str, name: str, params: dict[str, Any], seed: int, **extra: Any
) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "recommender": label,
        "name": name,
        "params": params,
        "seed": seed,
        "kind": "recommender",
        "status": "ok",
        "error": None,
        "fit_time_s": None,
        "fit_peak_mb": None,
        "latency": None,
        "metrics": {},
        "vs_baseline": {},
        **extra,
    }


def _run_one(
    spec: RecommenderSpec,
    protos: list,
    seed: int,
    config: BenchConfig,
    progress: bool,
    evaluations: dict[tuple[str, str], Evaluation],
) -> list[dict[str, Any]]:
    rows = [_row(p.name, spec.label, spec.name, spec.params, seed) for p in protos]
    try:
        rec = _create(spec, seed)
        with measure() as usage:
            rec.fit(protos[0].fit_data)
    except Exception as err:  # noqa: BLE001 - one failure must not stop the benchmark
        return [_failed(row, "fit", err) for row in rows]
    for row, proto in zip(rows, protos, strict=True):
        row["fit_time_s"], row["fit_peak_mb"] = usage.seconds, usage.peak_mb
        try:
            ev = proto.evaluate(rec, progress=progress)
            evaluations[(proto.name, spec.label)] = ev
            if ev.candidates:  # ranked over its own list: not comparable test by test
                row["candidates"] = ev.candidates
            row["fallback_share"] = ev.fallback_share
            if ev.fallback_share == 1.0:  # every answer was the shared fallback
                row["status"] = "fallback"
            if isinstance(proto, FullRanking):
                users = [str(u) for u in proto.dataset.user_ids[proto.users]]
                n = min(len(users), config.latency_requests + config.latency_warmup)
                sample = list(np.random.default_rng(seed).permutation(users)[:n])
                k = min(config.k)
                row["latency"] = latency(
                    lambda u, k=k: rec.recommend(u, k=k),
                    lambda us, k=k: rec.recommend_batch(us, k=k),
                    sample,
                    warmup=config.latency_warmup,
                    batch_size=config.latency_batch,
                )
        except Exception as err:  # noqa: BLE001
            _failed(row, "evaluate", err)
    return rows


def _failed(row: dict[str, Any], step: str, err: BaseException) -> dict[str, Any]:
    logger.error("%s failed during %s: %s", row["recommender"], step, err)
    row["status"] = "error"
    row["error"] = f"{step}: {type(err).__name__}: {err}"
    row["traceback"] = traceback.format_exc(limit=5)
    return row
