"""Grid search of ALS defaults on ml-latest-small: fit on the leave-one-out train part, score the
validation item (the user's second-last interaction) by full-ranking NDCG@10 against every item.

Run from the repository root (one thread per library, as the README's commands):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        python benchmarks/candidates/tune_als.py [--k-core 5] > benchmarks/candidates/tune_als.txt
The test item is never looked at here.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import hybridrec as hr


def validation_scores(rec: hr.Recommender, split: hr.Split, k: int = 10) -> tuple[float, float]:
    """Full-ranking NDCG@k and Recall@50 of the validation item, over users who have one."""
    valid = split.valid.interactions
    users, targets = valid["user"].to_numpy(), valid["item"].to_numpy()
    items, _ = rec.recommend_codes(users, 50)
    hit = items == targets[:, None]
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1), 10**9)
    ndcg = np.where(rank < k, 1.0 / np.log2(rank + 2), 0.0)
    return float(ndcg.mean()), float(hit.any(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k-core", type=int, default=0)
    args = parser.parse_args()
    data = hr.load_dataset("ml-latest-small")
    if args.k_core:
        data = data.k_core(args.k_core)
    split = hr.split(data, "leave-one-out")
    print(f"# {data!r}; validation users: {split.valid.n_interactions}")
    print("factors\tregularization\talpha\titerations\tNDCG@10\tRecall@50\tfit_s")
    grid = itertools.product((64, 128, 256), (1.0, 5.0, 20.0), (1.0, 2.0, 5.0, 10.0), (15,))
    for factors, reg, alpha, iters in grid:
        started = time.perf_counter()
        rec = hr.create(
            "als", factors=factors, regularization=reg, alpha=alpha, iterations=iters,
            show_progress=False,
        ).fit(split.train)  # fmt: skip
        fit_s = time.perf_counter() - started
        ndcg, recall = validation_scores(rec, split)
        print(
            f"{factors}\t{reg:g}\t{alpha:g}\t{iters}\t{ndcg:.4f}\t{recall:.4f}\t{fit_s:.1f}",
            flush=True,
        )
    for name in ("ease", "itemknn"):
        ndcg, recall = validation_scores(hr.create(name).fit(split.train), split)
        print(f"# {name}: NDCG@10 {ndcg:.4f}, Recall@50 {recall:.4f}")


if __name__ == "__main__":
    main()
