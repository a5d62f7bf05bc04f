"""Timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this module is importable)."""
import statistics
import time


def timed(fn, repeats, sync):
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up, and its last result."""
    fn()
    sync()
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out
