"""Latency of the ``prompt`` stage alone: seconds per cold-start user, per mode and thread count.

The language model alone (``prior_weight=0``, so every request runs it), 20 candidates,
``recommend(k=10)`` for held-out users asked with their preference text, the answer cache
emptied before each request (the same measurement as bench_coldstart.py's). Side by side in one
run, so the modes and thread counts share the machine's load. Usage (repository root):

    python benchmarks/coldstart/latency.py --users 20 --out benchmarks/coldstart/latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

import hybridrec as hr

sys.path.insert(0, str(Path(__file__).parent))
from bench_coldstart import latency, protocols  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=["pointwise", "listwise"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = hr.load_dataset("ml-latest-small")
    proto = protocols(data, 0.25, 0, args.users)[0]
    contexts = proto.contexts()
    out = {
        "command": "python benchmarks/coldstart/latency.py " + " ".join(sys.argv[1:]),
        "load_average_at_start": list(os.getloadavg()),
        "rows": [],
    }
    for mode in args.modes:
        rec = hr.create("prompt", mode=mode, prior_weight=0.0, noun="movie").fit(proto.fit_data)
        latency(rec, contexts, 2)  # warm-up: the model loads on first use
        for threads in args.threads:
            torch.set_num_threads(threads)
            row = {"mode": mode, "threads": threads, **latency(rec, contexts, args.users)}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    out["load_average_at_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
