"""How long loading and splitting take at MovieLens-25M scale.

Writes a synthetic catalogue in the exact ml-latest/ml-25m CSV layout (``ratings.csv`` with
``userId,movieId,rating,timestamp``; ``movies.csv`` with quoted titles that contain commas) of
``--rows`` ratings to a temporary folder, then times ``hybridrec.load_dataset(folder)``,
``hybridrec.split(ds, "leave-one-out")`` and the CSR interaction matrix. The shape follows
ML-25M: 162,541 users, 59,047 movies, ratings in half stars.

    python benchmarks/data/bench_load.py --rows 25000000 --out benchmarks/data/results.md
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import hybridrec as hr


def write_folder(folder: Path, rows: int, users: int, items: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # long-tailed item popularity and user activity (power laws over ranks), as in real data
    item_p = 1.0 / np.arange(1, items + 1) ** 0.9
    user_p = 1.0 / np.arange(1, users + 1) ** 0.5
    item = rng.choice(items, rows, p=item_p / item_p.sum()) + 1
    user = rng.choice(users, rows, p=user_p / user_p.sum()) + 1
    ratings = pd.DataFrame({
        "userId": user,
        "movieId": item,
        "rating": rng.integers(1, 11, rows) / 2.0,
        "timestamp": rng.integers(789_652_009, 1_574_327_703, rows),
    })
    ratings.to_csv(folder / "ratings.csv", index=False, chunksize=1_000_000)
    movies = pd.DataFrame({
        "movieId": np.arange(1, items + 1),
        "title": [f"Movie {i}, The ({1900 + i % 120})" for i in range(1, items + 1)],
        "genres": ["Comedy|Drama"] * items,
    })
    movies.to_csv(folder / "movies.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--items", type=int, default=59_047)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_folder(folder, args.rows, args.users, args.items, args.seed)
        write_s = time.perf_counter() - start
        size_mb = (folder / "ratings.csv").stat().st_size / 2**20
        start = time.perf_counter()
        ds = hr.load_dataset(folder)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        split = hr.split(ds, "leave-one-out")
        split_s = time.perf_counter() - start
        start = time.perf_counter()
        matrix = split.train.matrix("binary")
        matrix_s = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# Loading at MovieLens-25M scale",
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine: {platform.platform()}, 2 shared CPU cores; pandas {pd.__version__}.",
        "",
        f"Synthetic ratings.csv in the ml-latest layout: {args.rows:,} rows ({size_mb:,.0f} MiB), "
        f"written in {write_s:.1f} s (not counted).",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| `load_dataset(folder)` ({ds.n_interactions:,} interactions, {ds.n_users:,} users, "
        f"{ds.n_items:,} items after keeping the latest of repeated pairs) | {load_s:.1f} |",
        f"| `split(ds, 'leave-one-out')` | {split_s:.1f} |",
        f"| `train.matrix()` (CSR, {matrix.nnz:,} non-zeros) | {matrix_s:.2f} |",
        "",
        f"Peak resident memory of the process: {peak_mb:,.0f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
