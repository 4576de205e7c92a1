// Value comparison with the tolerances of torch.testing.assert_close.
import * as assert from 'node:assert/strict';
import type { Tensor } from '../../lib';

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

export function assertClose(actual: Tensor, expected: Tensor, what: string, tol: Tolerance = {}): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const rtol = tol.rtol ?? 1.3e-6;
  const atol = tol.atol ?? 1e-5;
  const a = toNumbers(actual);
  const e = toNumbers(expected);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = e[i] as number;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const excess = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${a[worst]} but expected ${e[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

function toNumbers(t: Tensor): number[] {
  const src = t.dtype === 'float16' || t.dtype === 'bfloat16' ? t.to('float32') : t;
  const arr = src.toTypedArray();
  return Array.from(arr as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
}

/**
 * Closeness relative to the tensor's scale: |a - e| <= rel * (|e| + max|e|) + floor.
 * For float32 gradients that sum many terms with cancellation, where an
 * element-wise relative bound on a near-zero entry measures rounding, not bugs
 * (e.g. the key bias of attention, whose exact gradient is 0). The floor
 * (1e-6 by default) absorbs that rounding; a float64 run checks such tensors tightly.
 */
export function assertCloseToScale(actual: Tensor, expected: Tensor, what: string, rel = 1e-5, floor = 1e-6): void {
  const scale = toNumbers(expected).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assertClose(actual, expected, what, { rtol: rel, atol: rel * scale + floor });
}

/** Each case's output of ours against the oracle's `${name}/out0` (ops_oracle.py): the same shape, and close to the expected values' scale. */
export function assertMatchesOracle(ours: ReadonlyMap<string, Tensor>, theirs: ReadonlyMap<string, Tensor>, names: Iterable<string>, label = ''): void {
  for (const name of names) {
    const got = ours.get(name)!;
    const want = theirs.get(`${name}/out0`)!;
    const what = label === '' ? name : `${label} ${name}`;
    assert.deepEqual(got.shape, want.shape, what);
    assertCloseToScale(got, want, what);
  }
}
