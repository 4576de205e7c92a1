"""Timing helper shared by the Python sides of the benchmarks (the twin of bench/timing.ts)."""
import time


def best(fn, iters, repeats=3, settle=None):
    """Seconds per call of fn: one warm-up call, then the best of `repeats` runs of `iters` calls.
    `settle` runs after each timed run (e.g. a device sync)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if settle is not None:
            settle()
        times.append((time.perf_counter() - t0) / iters)
    return min(times)
