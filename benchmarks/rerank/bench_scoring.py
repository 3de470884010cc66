"""Speed of reranker scoring: shared-prefix (history run once, key/value cache reused) against
naive per-pair batches (every history + candidate prompt run in full), side by side in one run.

Shared-prefix scoring is measured with both strategies of ``hybridrec.rerank.scoring``:
``packed`` (the default where the attention implementation takes a custom 4-D mask: all
candidates in one row, no padding) and ``batched`` (right-padded batches on a repeated cache).
``speedup`` is naive time / default (``auto``) time; ``speedup_batched`` the same for
``batched``.

One user of the embedded ml-latest-small: a history of their 20 most recent liked titles; 20 and
50 candidate titles drawn at random (seeded) from movies they have not rated. Both paths score
the same prompts with the same backbone; the run records the scores' largest difference, the
times, tokens actually run, tokens/s, an estimate of the matmul rate against the machine's peak,
and the speed-up (``speedup`` in results.json, per candidate count). Not part of the test run;
not a timed assertion.

    .venv/bin/python benchmarks/rerank/bench_scoring.py --out benchmarks/rerank/results/scoring
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "hybridrec" / "datasets" / "ml-latest-small"

#: the prompt of this benchmark (the reranker's own template comes with the rerank stage)
HEAD = "The user watched and liked these movies, most recent last: {history}.\n"
CANDIDATE = "Candidate movie: {title}\nWill the user like the candidate movie? Answer:"

#: fp32 matmul peak of the project's 2-core machines (DESIGN.md, "Compute facts")
PEAK_GFLOPS = 116.0


def user_and_candidates(
    n_history: int, n_candidates: int, seed: int
) -> tuple[str, list[str], list[str]]:
    """A user with at least ``n_history`` liked movies (rating >= 4): their id, most recent
    liked titles (oldest first) and ``n_candidates`` unrated titles drawn at random."""
    with gzip.open(DATA / "movies.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        titles = {row["movieId"]: row["title"] for row in csv.DictReader(fh)}
    liked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    rated: dict[str, set[str]] = defaultdict(set)
    with gzip.open(DATA / "ratings.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            rated[row["userId"]].add(row["movieId"])
            if float(row["rating"]) >= 4:
                liked[row["userId"]].append((int(row["timestamp"]), row["movieId"]))
    user = min((u for u in liked if len(liked[u]) >= n_history), key=int)
    history = [titles[m] for _, m in sorted(liked[user])[-n_history:]]
    unrated = sorted(m for m in titles if m not in rated[user])
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(unrated), size=n_candidates, replace=False)
    return user, history, [titles[unrated[i]] for i in picks]


def machine_note() -> dict[str, Any]:
    import torch
    import transformers

    from hybridrec.eval.bench import cpu_name, git_commit

    cpu, commit = cpu_name(), git_commit()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "git_commit": commit,
        "note": "CPU cores shared with other work running at the same time (see load_average); "
        "compare numbers within one run only",
    }


def non_embedding_params(model: Any) -> int:
    embeddings = {id(p) for m in (model.get_input_embeddings(),) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def command_line() -> str:
    from hybridrec.eval.bench import script_command

    return script_command(ROOT)


def markdown(result: dict[str, Any]) -> str:
    cfg, m = result["config"], result["machine"]
    lines = [
        "# Reranker scoring speed: shared prefix against naive per-pair batches",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Backbone `{cfg['model']}` ({cfg['head']} head), {m['cpu']}, {m['cores']} cores, "
        f"GPU: {m['gpu']}; torch {m['torch']}, transformers {m['transformers']}, commit "
        f"{m['git_commit']}. {m['note']}: the load average (1, 5, 15 min) is recorded per "
        f"setting.",
        "",
        f"User {cfg['user']} of ml-latest-small: history of their {cfg['n_history']} most recent "
        f"liked titles ({result['prefix_tokens']} tokens of shared prefix); candidates drawn at "
        f"random (seed {cfg['seed']}) from the movies they have not rated. Prompt: "
        + f"`{HEAD.strip()}` then `{CANDIDATE}`".replace("\n", "\\n"),
        "",
        "| torch threads | candidates | naive s | shared-prefix s (packed, default) "
        "| **speed-up** | batched s | speed-up batched | tokens run (naive / packed / batched) "
        "| naive tok/s | est. matmul GFLOP/s (naive) | max abs score diff | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for setting in result["settings"]:
        for n, run in setting["runs"].items():
            lines.append(
                f"| {setting['threads']} | {n} | {run['naive_s']:.2f} | {run['shared_s']:.2f} | "
                f"**{setting['speedup'][n]:.1f}x** | {run['batched_s']:.2f} | "
                f"{setting['speedup_batched'][n]:.1f}x | {run['naive_tokens']} / "
                f"{run['shared_tokens']} / {run['batched_tokens']} | "
                f"{run['naive_tokens_per_s']:.0f} | {run['naive_gflops']:.0f} of "
                f"~{PEAK_GFLOPS:.0f} | "
                f"{max(run['max_abs_diff'], run['max_abs_diff_batched']):.1e} | "
                f"{' '.join(str(x) for x in run['load_average'])} |"
            )
    lines += [
        "",
        f"`speedup` in results.json: the first setting ({result['speedup_threads']} torch "
        f"threads). Peak resident memory of the process: {result['peak_rss_mb']:.0f} MB. Times "
        f"are one run each after a warm-up, in the order naive, packed, batched; tokens run count "
        f"the shared prefix once and, for batched, the padding; matmul GFLOP/s is estimated as "
        f"2 x non-embedding parameters ({result['non_embedding_params'] / 1e6:.0f}M) x tokens / "
        f"time (attention ignored). Targets of the rerank issue: >= 4x at 20 candidates, aim 8x "
        f"at 50.",
        "",
    ]
    return "\n".join(lines)


def measure(
    bb: Any, prefix: str, candidates: list[str], counts: list[int], n_params: int
) -> dict[str, dict[str, Any]]:
    """Naive, packed and batched scoring of the first ``n`` candidates, for each count."""
    from hybridrec.rerank.backbone import plan_batches
    from hybridrec.rerank.scoring import common_prefix_length, resolve_strategy, score_shared_ids

    runs: dict[str, dict[str, Any]] = {}
    for n in counts:
        texts = [prefix + CANDIDATE.format(title=t) for t in candidates[:n]]
        ids = bb.encode(texts)
        shared = common_prefix_length(ids)
        start = time.perf_counter()
        naive = bb.score_ids(ids)
        naive_s = time.perf_counter() - start
        times, diffs = {}, {}
        for strategy in ("auto", "batched"):
            start = time.perf_counter()
            fast = score_shared_ids(bb, ids, strategy=strategy)
            times[strategy] = time.perf_counter() - start
            diffs[strategy] = float(np.abs(naive - fast).max())
        naive_tokens = sum(len(r) for r in ids)
        shared_tokens = shared + sum(len(r) - shared for r in ids)
        padded_tokens = shared + sum(
            len(b) * max(len(ids[i]) - shared for i in b)
            for b in plan_batches([len(r) - shared for r in ids], fixed=shared)
        )
        runs[str(n)] = {
            "naive_s": naive_s,
            "shared_s": times["auto"],
            "batched_s": times["batched"],
            "auto_strategy": resolve_strategy(bb, "auto"),
            "naive_tokens": naive_tokens,
            "shared_tokens": shared_tokens,
            "batched_tokens": padded_tokens,
            "naive_tokens_per_s": naive_tokens / naive_s,
            "shared_tokens_per_s": shared_tokens / times["auto"],
            "naive_gflops": 2 * n_params * naive_tokens / naive_s / 1e9,
            "shared_gflops": 2 * n_params * shared_tokens / times["auto"] / 1e9,
            "max_abs_diff": diffs["auto"],
            "max_abs_diff_batched": diffs["batched"],
            "mean_candidate_tokens": float(np.mean([len(r) - shared for r in ids])),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        print(
            f"{n} candidates: naive {naive_s:.2f} s, shared {times['auto']:.2f} s "
            f"(x{naive_s / times['auto']:.1f}), batched {times['batched']:.2f} s "
            f"(x{naive_s / times['batched']:.1f}), max diff {max(diffs.values()):.1e}",
            flush=True,
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--head", default="classifier", choices=["classifier", "verbalizer"])
    parser.add_argument("--candidates", default="20,50", help="comma-separated counts")
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", default="", help="comma-separated torch thread counts, each measured "
        "in turn (default: torch's own, one setting)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/rerank/results/scoring")
    args = parser.parse_args(argv)

    import torch

    from hybridrec.rerank.backbone import Backbone
    from hybridrec.rerank.scoring import common_prefix_length

    threads = [int(t) for t in args.threads.split(",") if t] or [torch.get_num_threads()]
    counts = [int(c) for c in args.candidates.split(",")]
    user, history, candidates = user_and_candidates(args.history, max(counts), args.seed)
    prefix = HEAD.format(history=", ".join(history))
    bb = Backbone.load(args.model, args.head, seed=args.seed, device="cpu")
    n_params = non_embedding_params(bb.model)
    settings = []
    for t in threads:
        torch.set_num_threads(t)
        print(f"{t} torch threads", flush=True)
        bb.score_texts([prefix + CANDIDATE.format(title=candidates[0])])  # warm-up
        runs = measure(bb, prefix, candidates, counts, n_params)
        settings.append(
            {
                "threads": t,
                "runs": runs,
                "speedup": {n: r["naive_s"] / r["shared_s"] for n, r in runs.items()},
                "speedup_batched": {n: r["naive_s"] / r["batched_s"] for n, r in runs.items()},
            }
        )

    result = {
        "command": command_line(),
        "config": {
            "model": args.model,
            "head": args.head,
            "user": user,
            "n_history": args.history,
            "candidates": counts,
            "seed": args.seed,
            "prompt_head": HEAD,
            "prompt_candidate": CANDIDATE,
        },
        "machine": machine_note(),
        "prefix_tokens": common_prefix_length(bb.encode([prefix + "x", prefix + "y"])),
        "non_embedding_params": n_params,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "settings": settings,
        "speedup": settings[0]["speedup"],
        "speedup_batched": settings[0]["speedup_batched"],
        "speedup_threads": settings[0]["threads"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
