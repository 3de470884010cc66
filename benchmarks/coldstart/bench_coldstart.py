"""Cold-start benchmark of the ``prompt`` stage on ml-latest-small (see README.md).

Protocols (hybridrec.eval.protocols): ``cold-start-text`` (full ranking, genres/tags text),
``cold-start`` (no text), ``cold-start-sampled-random`` and ``cold-start-sampled-popularity``
(1 positive + 19 negatives, shuffled). Rows: random, popularity, embedding (text alone), and
per language-model mode the prompt stage with the LM alone (prior weight 0), the prior alone
(weight 1, on the same candidates) and LM + prior (weight chosen on validation users).

    OMP_NUM_THREADS=1 python benchmarks/coldstart/bench_coldstart.py --users 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

import hybridrec as hr
from hybridrec.data.splits import cold_start
from hybridrec.eval import stats
from hybridrec.eval.protocols import ColdStart, ColdStartSampled, Protocol

log = logging.getLogger("bench_coldstart")
K = (1, 5, 10)


def protocols(data: Any, frac: float, seed: int, users: int | None) -> list[Protocol]:
    split = cold_start(data, test_frac=frac, valid_frac=0.0, seed=seed)
    common = {"frac": frac, "split": split, "seed": seed, "users": users, "k": K}
    return [
        ColdStart(data, with_text=True, **common),
        ColdStart(data, with_text=False, **common),
        ColdStartSampled(data, sampling="random", **common),
        ColdStartSampled(data, sampling="popularity", **common),
    ]


def summarise(per_user: dict[str, np.ndarray], base: dict[str, np.ndarray] | None) -> dict:
    out = {}
    for metric, values in per_user.items():
        lo, hi = stats.bootstrap_ci(values, resamples=1000, seed=0)
        row = {"mean": float(np.nanmean(values)), "ci_low": lo, "ci_high": hi, "n": len(values)}
        if base is not None and metric in base and base[metric].shape == values.shape:
            row["vs_popularity"] = stats.paired_test(values, base[metric])
        out[metric] = row
    return out


def latency(rec: Any, contexts: list, n: int) -> dict[str, float]:
    """Seconds per user for ``recommend(k=10)`` with the answer cache emptied first."""
    times = []
    for ctx in contexts[:n]:
        if hasattr(rec, "_memo"):
            rec._memo.clear()
        start = time.perf_counter()
        rec.recommend(ctx, k=10, on_unused="ignore")
        times.append(time.perf_counter() - start)
    t = np.asarray(times)
    return {"p50_s": float(np.median(t)), "p95_s": float(np.quantile(t, 0.95)), "n": len(t)}


def order_spread(rec: Any, contexts: list, n: int, orders: int) -> dict[str, float]:
    """Listwise: Kendall tau between the rankings of the same candidates under seeded orders."""
    from hybridrec.coldstart.prompt import Candidate

    means = []
    for ctx in contexts[:n]:
        request = rec._resolve(ctx)
        codes = rec._candidates([request], exclude_seen=True)[0]
        text, profile = rec._preference(request)
        cands = [Candidate(str(c), str(rec.item_titles_[c])) for c in codes]
        result = rec.scorer.impl.score_permuted(text, cands, profile, orders=orders, seed=0)
        means.append(result.sensitivity().mean)
        first = np.argmax(result.per_order, axis=1)
        means_pos = [int(np.flatnonzero(result.orders[r] == first[r])[0]) for r in range(orders)]
        log.debug("picked positions %s", means_pos)
    m = np.asarray(means, dtype=np.float64)
    return {
        "kendall_mean": float(np.nanmean(m)),
        "kendall_p10": float(np.nanquantile(m, 0.1)),
        "kendall_p90": float(np.nanquantile(m, 0.9)),
        "orders": orders,
        "users": len(m),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/coldstart/results"))
    ap.add_argument("--frac", type=float, default=0.25)
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--modes", nargs="+", default=["pointwise", "listwise", "generative"])
    ap.add_argument("--valid-users", type=int, default=50)
    ap.add_argument("--gen-users", type=int, default=30)
    ap.add_argument("--latency-users", type=int, default=30)
    ap.add_argument("--order-users", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    data = hr.load_dataset("ml-latest-small")
    protos = protocols(data, args.frac, args.seed, args.users)
    train = protos[0].fit_data
    text_ctx = protos[0].contexts()
    results: dict[str, Any] = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/coldstart/bench_coldstart.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "protocols": {
            p.name: {"description": p.description, "users": len(p.users)} for p in protos
        },
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "load_average_at_start": list(os.getloadavg()),
        "rows": {},
        "extras": {},
    }
    per_user: dict[str, np.ndarray] = {}
    base: dict[str, dict[str, np.ndarray]] = {}

    def record(label: str, rec: Any, which: list[Protocol]) -> None:
        for p in which:
            start = time.perf_counter()
            ev = p.evaluate(rec)
            took = time.perf_counter() - start
            if label == "popularity":
                base[p.name] = ev.per_user
            row = summarise(ev.per_user, base.get(p.name) if label != "popularity" else None)
            results["rows"].setdefault(p.name, {})[label] = {
                "metrics": row,
                "fallback_share": ev.fallback_share,
                "seconds": took,
            }
            for metric, values in ev.per_user.items():
                per_user[f"{p.name}/{label}/{metric}"] = values
            log.info("%s %s ndcg@10 %.4f (%.0fs)", label, p.name, row["ndcg@10"]["mean"], took)
            save()

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
        np.savez_compressed(args.out / "per_user.npz", **per_user)

    for name, params in (
        ("random", {"seed": args.seed}),
        ("popularity", {}),
        ("embedding", {}),
    ):
        record(name, hr.create(name, **params).fit(train), protos)

    lm_protos = [protos[0], protos[2], protos[3]]
    for spec in args.modes:  # "pointwise:raw" / "pointwise:cal": calibration off / on
        mode, _, variant = spec.partition(":")
        common = {"mode": mode, "noun": "movie", "seed": args.seed}
        if variant in ("raw", "cal"):  # pointwise without / with calibration
            common["prompt"] = {"calibrate": variant == "cal"}
        mode = spec.replace(":", "-")
        if common["mode"] == "generative":
            gen_protos = protocols(data, args.frac, args.seed, args.gen_users)
            gen_protos = [gen_protos[0], gen_protos[2]]
            common["prompt"] = {"k": 5}
            alone = hr.create("prompt", prior_weight=0.0, **common).fit(train)
            record(f"prompt-{mode}-lm-alone", alone, gen_protos)
            results["extras"][mode] = {
                "invalid_output_rate": alone.invalid_output_rate,
                "stats": dict(alone.stats_),
                "users": args.gen_users,
                "latency": latency(alone, text_ctx, min(args.latency_users, 10)),
            }
            save()
            continue
        start = time.perf_counter()
        fused = hr.create("prompt", valid_users=args.valid_users, **common).fit(train)
        fit_s = time.perf_counter() - start
        results["extras"][mode] = {
            "prior_weight": fused.fusion_.weight,
            "validation_ndcg10_by_prior_weight": fused.validation_,
            "fit_seconds": fit_s,
        }
        alone = hr.create("prompt", prior_weight=0.0, **common).fit(train)
        alone._memo, alone._lm = fused._memo, fused.scorer  # same model: share its answers
        results["extras"][mode]["latency_lm_path"] = latency(alone, text_ctx, args.latency_users)
        if common["mode"] == "listwise":
            results["extras"][mode]["order_sensitivity"] = order_spread(
                alone, text_ctx, args.order_users, 4
            )
        save()
        record(f"prompt-{mode}-lm-alone", alone, lm_protos)
        if "prompt-prior-alone" not in results["rows"][protos[0].name]:
            prior = hr.create("prompt", prior_weight=1.0, **common).fit(train)
            record("prompt-prior-alone", prior, lm_protos)
        record(f"prompt-{mode}-lm+prior", fused, lm_protos + [protos[1]])
        results["extras"][mode]["stats"] = dict(fused.stats_)
        save()
    results["load_average_at_end"] = list(os.getloadavg())
    save()
    log.info("done")


if __name__ == "__main__":
    main()
