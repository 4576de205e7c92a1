// The serving worker's trace cache: a replay per batch size seen before, a
// recording for a new one, and only the sizes used last kept (their traces
// disposed when dropped), with every answer what the function computes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { TraceCache } from '../../lib/serve/trace-cache';

test('the cache replays sizes it holds, records new ones and drops the least recently used beyond its capacity', () => {
  const w = et.randn([4, 3], { generator: et.Generator.create(1) }).keep();
  let calls = 0;
  const forward = (x: et.Tensor) => {
    calls++;
    return x.matmul(w).relu();
  };
  const cache = new TraceCache(2);
  try {
    const check = (n: number, seed: number) => et.scope(() => {
      const x = et.randn([n, 4], { generator: et.Generator.create(seed) });
      assert.deepEqual(cache.run(n, x, forward).toTypedArray(), forward(x).toTypedArray(), `batch ${n}`);
    });
    const recorded = (n: number, seed: number) => {
      const before = calls;
      check(n, seed);
      return calls - before === 2; // the recording ran forward, and so did the check
    };
    assert.equal(recorded(1, 10), true, 'a new size is recorded');
    assert.equal(recorded(2, 11), true);
    assert.equal(recorded(1, 12), false, 'a size it holds is replayed');
    assert.deepEqual(cache.sizes(), [2, 1], 'least recently used first');
    assert.equal(recorded(3, 13), true);
    assert.deepEqual(cache.sizes(), [1, 3], 'size 2, the least recently used, was dropped');
    assert.equal(recorded(2, 14), true, 'a dropped size is recorded again');
    assert.deepEqual(cache.sizes(), [3, 2]);
    const live = et.memory().liveTensors;
    for (let i = 0; i < 20; i++) check(2 + (i % 2), 100 + i);
    assert.equal(et.memory().liveTensors, live, 'replays leave no tensor behind');
  } finally {
    cache.dispose();
    w.dispose();
  }
  assert.deepEqual(cache.sizes(), []);
});

test('a forward pass that cannot be traced runs eagerly from then on, with the same answers', () => {
  const cache = new TraceCache(4);
  // Reads a value it computed and branches on it: a replay could not follow.
  const forward = (x: et.Tensor) => ((x.sum().item() as number) > 0 ? x.mul(2) : x.mul(-1));
  try {
    for (const [seed, n] of [[1, 2], [2, 2], [3, 1]] as const) {
      et.scope(() => {
        const x = et.randn([n, 3], { generator: et.Generator.create(seed) });
        assert.deepEqual(cache.run(n, x, forward).toTypedArray(), forward(x).toTypedArray());
      });
    }
    assert.match(cache.refused ?? '', /The traced function read the values of a tensor it computed \(item\)/);
    assert.deepEqual(cache.sizes(), []);
  } finally {
    cache.dispose();
  }
});
