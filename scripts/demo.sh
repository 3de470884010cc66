#!/usr/bin/env bash
# Set up (if needed) and run the quick benchmark on the embedded ml-latest-small dataset, then
# the rerank stage: SmolLM2-135M fine-tuned with LoRA on 32 examples (a demonstration, not a
# measurement: see benchmarks/rerank/ for those) reranking the embedding's top 10 for 40 users.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="${1:-out/quick}"
hybridrec bench --quick --out "$OUT"
hybridrec bench benchmarks/configs/demo-rerank.json --out "$OUT-rerank"
