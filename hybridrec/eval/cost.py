"""Cost measurements: wall time, peak memory while a block runs, request latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Usage:
    seconds: float = 0.0
    peak_mb: float = 0.0  # peak resident memory above what the process held at the start


@contextmanager
def measure(interval: float = 0.01) -> Iterator[Usage]:
    """Time a block and sample the process's resident memory to find its peak.

    Example:
        >>> with measure() as usage:
        ...     _ = bytearray(10_000_000)
        >>> usage.seconds >= 0
        True
    """
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    usage = Usage()
    start = time.perf_counter()
    thread.start()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        done.set()
        thread.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        usage.peak_mb = (peak[0] - base) / 2**20


def latency(
    one: Callable[[Any], object],
    batch: Callable[[Sequence[Any]], object],
    users: Sequence[Any],
    *,
    warmup: int,
    batch_size: int,
) -> dict[str, Any]:
    """Per-request latency of ``one(user)`` and throughput of ``batch(users)``.

    The first ``warmup`` users are requested untimed; every other user is timed once.
    Returns p50/p95/p99/mean in milliseconds, users per second one at a time and batched.
    """
    for user in users[:warmup]:
        one(user)
    timed = list(users[warmup:]) or list(users)
    ms = np.empty(len(timed))
    for i, user in enumerate(timed):
        start = time.perf_counter()
        one(user)
        ms[i] = (time.perf_counter() - start) * 1000
    batch(timed[:batch_size])  # warm-up of the batch path
    start = time.perf_counter()
    for s in range(0, len(timed), batch_size):
        batch(timed[s : s + batch_size])
    batch_s = time.perf_counter() - start
    return {
        "requests": len(timed),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "single_users_per_s": float(1000.0 / ms.mean()) if ms.mean() > 0 else float("inf"),
        "batch_size": batch_size,
        "batch_users_per_s": float(len(timed) / batch_s) if batch_s > 0 else float("inf"),
    }
