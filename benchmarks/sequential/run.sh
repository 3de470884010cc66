#!/usr/bin/env bash
# Reproduce benchmarks/sequential/: sasrec beside popularity, itemknn and ease on ml-latest-small,
# full ranking, unfiltered and 5-core, three seeds; then the mean/spread summary.
# One thread, as the committed numbers were measured (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for cfg in ml-latest-small ml-latest-small-5core; do
    hybridrec bench "benchmarks/sequential/$cfg.json" --out "benchmarks/sequential/results/$cfg" --quiet
done
python benchmarks/sequential/summarise.py benchmarks/sequential/results/{ml-latest-small,ml-latest-small-5core}/results.json \
    --out benchmarks/sequential/summary.md
