// Timing helpers shared by the benchmarks.

/**
 * Seconds per call of fn: one warm-up call, then the best of `repeats` runs of
 * `iters` calls. `settle` runs after each timed run (e.g. a device sync).
 */
export function bestPerCall(fn: () => void, iters: number, repeats = 3, settle?: () => void): number {
  fn();
  let min = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    settle?.();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e9 / iters);
  }
  return min;
}

/** Milliseconds of fn's median call: 5 warm-up calls, then `calls` timed one by one. */
export function medianCallMs(fn: () => void, calls: number): number {
  for (let i = 0; i < 5; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

export function median(xs: readonly number[]): number {
  return xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
}

/** 1.23 ms or 4.56 us. */
export function formatSeconds(s: number): string {
  return s >= 1e-3 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(2)} us`;
}
