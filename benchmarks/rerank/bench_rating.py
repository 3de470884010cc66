"""Rating task (TALLRec protocol of the harness): the ``lm`` reranker against rating baselines.

Builds the harness's ``pairwise-auc`` protocol on ml-latest-small (history = the previous 10
rated items, candidate = the next one, liked = rating >= 4; test users disjoint from training
users), then splits the training users once more: a share of them (``--fusion-users``) never
reaches the language model and supplies the pairs on which every calibration and fusion is
fitted, so the fused score is fitted on data the model did not train on. Rows:

- the harness's rating baselines (item mean, user mean, their logistic regression),
- ``untrained`` (random classifier head), ``zero-shot`` (verbalizer head, no training),
- ``STRATEGY:N`` fine-tuned on N rating examples of the remaining training users,

each reported alone (its logit calibrated by a logistic regression) and fused (one logistic
regression on the logit, the item mean and the user mean), with the global AUC, its 95% CI and
the difference to ``item+user-mean-lr`` on the same pairs (CI and p over users resampled).

Writes results.json and results.md after every row, so a cut-off run keeps what it finished.

    python benchmarks/rerank/bench_rating.py --runs untrained,zero-shot,lora:64 \
        --out benchmarks/rerank/results/rating
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import hybridrec as hr
from hybridrec.eval.bench import (
    _pairwise_bootstrap,
    auc_difference,
    cpu_name,
    git_commit,
    script_command,
)
from hybridrec.eval.metrics import global_auc
from hybridrec.eval.protocols import PairwiseAUC
from hybridrec.rerank.lm import LMReranker

LEARNING_RATES = {"lora": 5e-4, "adalora": 1e-3, "ia3": 3e-3, "full": 3e-5, "top": 1e-4}


#: a run name ending in this also scores the trained model with its int8 copy (quantize="int8");
#: the copy's AUC is compared with the float model's on the same pairs
INT8 = "+int8"
#: ``--show`` names and the prompt switch each turns on
SIGNALS = {
    "genres": "show_genres",
    "ratings": "show_ratings",
    "popularity": "show_popularity",
    "mean_rating": "show_mean_rating",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ml-latest-small")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument(
        "--runs",
        default="untrained,zero-shot,lora:64,adalora:64,full:64,"
        "lora:256,adalora:256,full:256,lora:1024,adalora:1024,full:1024",
    )
    ap.add_argument("--head", default="verbalizer", help="head of the fine-tuned runs")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--test-pairs", type=int, default=400)
    ap.add_argument("--fusion-pairs", type=int, default=400)
    ap.add_argument("--fusion-users", type=float, default=0.2)
    ap.add_argument("--item-text", default="title", help="title or text")
    ap.add_argument(
        "--show",
        default="",
        help="signals put into the prompt's text, comma-separated: "
        f"{', '.join(SIGNALS)} (none by default: titles only)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of an earlier run in --out (same "
        "settings) and run only the missing ones",
    )
    args = ap.parse_args(argv)
    args.show = [s for s in args.show.split(",") if s]
    unknown = sorted(set(args.show) - set(SIGNALS))
    if unknown:
        ap.error(f"--show: unknown signal(s) {', '.join(unknown)}; known: {', '.join(SIGNALS)}")
    return args


def make_protocol(args: argparse.Namespace) -> tuple[PairwiseAUC, hr.Dataset]:
    """The harness protocol, its test pairs sampled, and the LM's training users' data."""
    data = hr.load_dataset(args.dataset)
    protocol = PairwiseAUC(
        data, history_len=10, pairs_per_user=10, seed=args.seed, users=None, k=(10,)
    )
    rng = np.random.default_rng(args.seed)
    test = protocol.test_pairs
    keep = np.sort(rng.choice(len(test), min(args.test_pairs, len(test)), replace=False))
    protocol.test_pairs = test.iloc[keep].reset_index(drop=True)
    protocol.test_users = np.unique(protocol.test_pairs["user"].to_numpy())
    # fusion users: training users the language model never sees
    train_users = np.unique(protocol.train.interactions["user"].to_numpy())
    n_fusion = max(1, int(round(args.fusion_users * len(train_users))))
    fusion_users = np.sort(rng.permutation(train_users)[:n_fusion])
    pairs = protocol._pairs(fusion_users)
    keep = np.sort(rng.choice(len(pairs), min(args.fusion_pairs, len(pairs)), replace=False))
    protocol.train_pairs = pairs.iloc[keep].reset_index(drop=True)
    inter = protocol.train.interactions
    lm_train = protocol.train.with_interactions(
        inter[~np.isin(inter["user"].to_numpy(), fusion_users)], f"{data.name}/lm-train"
    )
    return protocol, lm_train


def make_reranker(run: str, args: argparse.Namespace) -> tuple[LMReranker, dict[str, Any]]:
    run = run.removesuffix(INT8)
    prompt = {
        "history_items": 10,
        **{switch: name in args.show for name, switch in SIGNALS.items()},
    }
    common = {
        "model": args.model,
        "task": "rating",
        "item_text": args.item_text,
        "prompt": prompt,
        "seed": args.seed,
    }
    if run == "untrained":
        return LMReranker(head="classifier", train=False, **common), {"head": "classifier"}
    if run == "zero-shot":
        return LMReranker(head="verbalizer", train=False, **common), {"head": "verbalizer"}
    strategy, n = run.split(":")
    training = {
        "strategy": strategy,
        "learning_rate": LEARNING_RATES[strategy],
        "num_train_epochs": args.epochs,
        "batch_size": 8,
        "warmup_ratio": 0.1,
        "early_stopping_patience": 2,
        "progress": True,
    }
    rr = LMReranker(head=args.head, shots=int(n), training=training, valid_frac=0.2, **common)
    return rr, {"head": args.head, "strategy": strategy, "shots": int(n), "training": training}


def auc_row(
    protocol: PairwiseAUC,
    x_test: np.ndarray,
    x_fit: np.ndarray,
    reference: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Calibrated global AUC with CI, and its difference to the reference scores."""
    ev = protocol._evaluation(x_test, x_fit)
    lo, hi, _ = _pairwise_bootstrap(ev.pairwise, None, args.bootstrap, args.seed)
    versus = auc_difference(ev.pairwise, reference, args.bootstrap, args.seed)
    return {
        "auc": float(global_auc(ev.pairwise[0], ev.pairwise[1])),
        "ci_low": lo,
        "ci_high": hi,
        "auc_user": float(np.nanmean(ev.per_user["auc_user"])),
        "logloss": ev.scalars["logloss"],
        "vs_item_user_lr": versus,
        "scores": ev.pairwise[0],
    }


def write(out: Path, report: dict[str, Any]) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    lines = [
        "# Rating task (TALLRec protocol): the lm reranker against rating baselines",
        "",
        f"Command: `{report['command']}`",
        "",
        report["description"],
        "",
        "| row | AUC alone [95% CI] | fused AUC [95% CI] | fused - item+user-mean-lr [95% CI] "
        "(p) | train ex | train s | ex/s | score s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        alone, fused = row["alone"], row.get("fused")

        def fmt(r: dict[str, Any] | None) -> str:
            return "–" if r is None else f"{r['auc']:.4f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

        vs = (fused or alone)["vs_item_user_lr"]
        diff = f"{vs['diff']:+.4f} [{vs['ci_low']:+.3f}, {vs['ci_high']:+.3f}] ({vs['p']:.3f})"
        tr = row.get("train", {})
        lines.append(
            f"| {row['name']} | {fmt(alone)} | {fmt(fused)} | {diff} | "
            f"{tr.get('examples', '–')} | {tr.get('seconds', 0):.0f} | "
            f"{tr.get('examples_per_s', 0):.2f} | {row.get('score_seconds', 0):.0f} |"
        )
    for row in report["rows"]:
        if "int8" in row:
            q, vs = row["int8"], row["int8"]["alone"]["vs_item_user_lr"]
            lines.append(
                f"\nint8 copy of {row['name']}: AUC alone {q['alone']['auc']:.4f} against "
                f"{row['alone']['auc']:.4f} in float32, difference {vs['diff']:+.4f} "
                f"[{vs['ci_low']:+.3f}, {vs['ci_high']:+.3f}] (p {vs['p']:.3f}); scoring "
                f"{q['score_seconds']:.0f} s against {row['score_seconds']:.0f} s; largest logit "
                f"change {q['max_abs_logit_change']:.3f}."
            )
    lines += ["", f"Machine: {report['machine']}", ""]
    (out / "results.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    protocol, lm_train = make_protocol(args)
    x_test = protocol.rating_features(protocol.test_pairs)
    x_fit = protocol.rating_features(protocol.train_pairs)
    reference = protocol._evaluation(x_test, x_fit).pairwise[0]
    report: dict[str, Any] = {
        "command": script_command(Path(__file__).resolve().parents[2]),
        "description": (
            f"{protocol.description} Here: {len(protocol.test_pairs)} test pairs of "
            f"{len(protocol.test_users)} test users; calibration and fusion fitted on "
            f"{len(protocol.train_pairs)} pairs of {args.fusion_users:.0%} of the training "
            f"users, whom the language model never sees; the model fine-tuned on rating "
            f"examples of the other training users ({lm_train.interactions['user'].nunique()} "
            f"users), its prompt the "
            f"previous 10 {args.item_text}s split liked/disliked"
            + (f", with these signals in the text: {', '.join(args.show)}" if args.show else "")
            + f". Backbone {args.model}, "
            f"{args.epochs:g} epochs at most (early stopping on a user-disjoint 20% validation "
            f"split), {args.threads} torch threads. Fused = one logistic regression on the LM "
            "logit, the item mean and the user mean."
        ),
        "machine": f"{cpu_name()}, {args.threads} threads, torch {torch.__version__}, "
        f"commit {git_commit()}",
        "rows": [],
    }
    for name, ev in protocol.rating_baselines().items():
        lo, hi, _ = _pairwise_bootstrap(ev.pairwise, None, args.bootstrap, args.seed)
        versus = auc_difference(ev.pairwise, reference, args.bootstrap, args.seed)
        report["rows"].append(
            {
                "name": name,
                "alone": {
                    "auc": ev.scalars["auc"],
                    "ci_low": lo,
                    "ci_high": hi,
                    "logloss": ev.scalars["logloss"],
                    "auc_user": float(np.nanmean(ev.per_user["auc_user"])),
                    "vs_item_user_lr": versus,
                },
            }
        )
    earlier = args.out / "results.json"
    if args.resume and earlier.is_file():
        old = json.loads(earlier.read_text())
        if old["description"] != report["description"]:
            raise SystemExit(f"{earlier}: an earlier run with other settings; not resuming")
        names = {r["name"] for r in report["rows"]}
        report["rows"] += [r for r in old["rows"] if r["name"] not in names]
        report["command"] = f"{old['command']}; then {report['command']}"
    done = {r["name"] for r in report["rows"]}
    write(args.out, report)
    todo = [run for run in args.runs.split(",") if run not in done]
    for run in tqdm(todo, desc="runs", file=sys.stderr):
        rr, settings = make_reranker(run, args)
        t0 = time.perf_counter()
        rr.fit(lm_train)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        lm_test = protocol._scores(rr, protocol.test_pairs, True, "test")
        lm_fit = protocol._scores(rr, protocol.train_pairs, True, "fusion")
        score_s = time.perf_counter() - t0
        alone = auc_row(protocol, lm_test, lm_fit, reference, args)
        fused = auc_row(
            protocol,
            np.column_stack([lm_test, x_test]),
            np.column_stack([lm_fit, x_fit]),
            reference,
            args,
        )
        row: dict[str, Any] = {
            "name": run,
            "settings": settings,
            "alone": alone,
            "fused": fused,
            "score_seconds": score_s,
            "raw_auc": float(global_auc(lm_test, protocol.test_pairs["label"])),
        }
        if rr.result_ is not None:
            res = rr.result_
            row["train"] = {
                "seconds": train_s,
                "examples": settings["shots"],
                "trainer_seconds": res.train_runtime,
                "examples_per_s": res.train_samples_per_second,
                "best_auc": res.best_auc,
                "best_epoch": res.best_epoch,
                "steps": res.steps,
                "history": res.history,
                "adalora_ranks": res.adalora_ranks,
            }
        if run.endswith(INT8):  # the same trained model, scored by its int8 copy as well
            t0 = time.perf_counter()
            rr.quantize = "int8"
            q_test = protocol._scores(rr, protocol.test_pairs, True, "test int8")
            q_fit = protocol._scores(rr, protocol.train_pairs, True, "fusion int8")
            row["int8"] = {
                "score_seconds": time.perf_counter() - t0,
                "alone": auc_row(protocol, q_test, q_fit, alone["scores"], args),
                "raw_auc": float(global_auc(q_test, protocol.test_pairs["label"])),
                "max_abs_logit_change": float(np.abs(q_test - lm_test).max()),
            }
            row["int8"]["alone"].pop("scores")
            rr.quantize = None
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for part in (alone, fused):
            part.pop("scores")
        report["rows"].append(row)
        write(args.out, report)
        print(
            f"{run}: alone {alone['auc']:.4f} fused {fused['auc']:.4f} "
            f"({fused['vs_item_user_lr']['diff']:+.4f}) train {train_s:.0f}s "
            f"score {score_s:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
