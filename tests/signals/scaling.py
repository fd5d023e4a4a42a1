"""Growth-rate checks for signals: CPU time on n and 4n characters, not a wall-clock limit.

A linear signal takes ~4x as long on 4x the input and a quadratic one ~16x; the check's
bound (8x) sits between them, with room for the noise of a shared CI machine. Process CPU
time (not wall time) is used, and the median of a few runs, so other processes on the
machine matter less.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

QUADRATIC_GUARD = 8.0  # 4x input: ~4x if linear, ~16x if quadratic


def cpu_seconds(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def growth(work: Callable[[int], Callable[[], object]], n: int) -> float:
    """CPU time on 4n divided by CPU time on n; ``work(size)`` builds the call to time."""
    small, large = work(n), work(4 * n)
    small()  # warm-up: lazy imports and compiled patterns are not what is measured
    return cpu_seconds(large) / max(cpu_seconds(small), 1e-4)
