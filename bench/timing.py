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


def median_ms(fn, calls):
    """Milliseconds of fn's median call: 5 warm-up calls, then `calls` timed one by one."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3
