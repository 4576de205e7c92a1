// Generators, threads and CUDA. CUDA checks run only where a GPU exists and
// are reported as skipped elsewhere.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { assertClose } from '../helpers/compare';
import { drawRows } from '../../lib/runtime/generator';

test('generator state can be saved and restored to replay draws', () => {
  const g = et.Generator.create(123);
  et.randn([10], { generator: g });
  const state = g.getState();
  const a = et.randn([5], { generator: g });
  et.randn([7], { generator: g });
  g.setState(state);
  const b = et.randn([5], { generator: g });
  assertClose(a, b, 'replayed draws', { atol: 0, rtol: 0 });
  assert.equal(g.initialSeed(), 123);
  const d = et.Generator.default('cpu');
  const saved = d.getState();
  const c1 = et.rand([3]);
  d.setState(saved);
  assertClose(et.rand([3]), c1, 'default generator replay', { atol: 0, rtol: 0 });
  assert.throws(() => g.setState(et.zeros([3])), /uint8/);
});

test('thread settings round-trip', () => {
  const n = et.getNumThreads();
  et.setNumThreads(1);
  assert.equal(et.getNumThreads(), 1);
  et.setNumThreads(n);
  assert.equal(et.getNumThreads(), n);
  assert.match(et.versions().torch, /^\d+\.\d+/);
});

const hasCuda = et.cuda.isAvailable();
const skipCuda = hasCuda ? false : 'no CUDA device on this machine';

test('CUDA: ops, autograd and readback agree with CPU', { skip: skipCuda }, async () => {
  assert.ok(et.cuda.deviceCount() >= 1);
  const gen = et.Generator.create(1);
  const a = et.randn([64, 32], { generator: gen });
  const b = et.randn([32, 16], { generator: gen });
  const ga = a.to('cuda').requiresGrad_();
  const gb = b.to('cuda').requiresGrad_();
  const y = et.gelu(ga.matmul(gb)).softmax(-1);
  y.sum().backward();
  const ca = a.clone().requiresGrad_();
  const cy = et.gelu(ca.matmul(b)).softmax(-1);
  cy.sum().backward();
  assert.equal(y.device, 'cuda:0');
  assertClose(y.cpu(), cy, 'cuda forward', { atol: 1e-4, rtol: 1e-3 });
  assertClose(ga.grad!.cpu(), ca.grad!, 'cuda grad', { atol: 1e-4, rtol: 1e-3 });
  const host = await y.data<'float32'>();
  assert.equal(host.length, 64 * 16);
  et.cuda.synchronize();
  const stats = et.cuda.memoryStats();
  assert.ok(stats.allocatedBytes.current > 0);
  const bf = et.autocast('cuda', 'bfloat16', () => ga.matmul(gb));
  assert.equal(bf.dtype, 'bfloat16');
  const exact = ga.detach().matmul(gb.detach()).cpu();
  assertClose(bf.to('float32').cpu(), exact, 'bf16 autocast matmul', { atol: 5e-2, rtol: 2e-2 });
  const half = et.autocast('cuda', 'float16', () => ga.matmul(gb));
  assert.equal(half.dtype, 'float16');
  assertClose(half.to('float32').cpu(), exact, 'fp16 autocast matmul', { atol: 1e-2, rtol: 5e-3 });
  const cg = et.Generator.create(5, 'cuda');
  const r1 = et.randn([4], { generator: cg, device: 'cuda' });
  cg.manualSeed(5);
  assertClose(et.randn([4], { generator: cg, device: 'cuda' }).cpu(), r1.cpu(), 'cuda generator', { atol: 0, rtol: 0 });
  const pinned = et.aten.pin_memory(a);
  assertClose(pinned.to({ device: 'cuda', nonBlocking: true }).cpu(), a, 'pinned non-blocking copy', { atol: 0, rtol: 0 });
});

test('CUDA: reported unavailable consistently on CPU-only builds', { skip: hasCuda ? 'a CUDA device is present' : false }, () => {
  assert.equal(et.cuda.deviceCount(), 0);
  assert.throws(() => et.zeros([1], { device: 'cuda' }));
});

test('drawRows with a row shard gives this rank the rows rank, rank + size, ... of the global draw, and advances the generator as the global draw does', () => {
  const whole = et.Generator.create(11);
  const all = drawRows([6, 3], whole, (s) => et.rand(s, { generator: whole }));
  const next = et.rand([2], { generator: whole });
  for (const rank of [0, 1, 2]) {
    const g = et.Generator.create(11);
    g.rowShard = { rank, size: 3 };
    const mine = drawRows([2, 3], g, (s) => et.rand(s, { generator: g }));
    assert.deepEqual(mine.shape, [2, 3]);
    const rows = all.toArray() as number[][];
    assert.deepEqual(mine.toArray(), [rows[rank], rows[rank + 3]]);
    assert.deepEqual(et.rand([2], { generator: g }).toArray(), next.toArray(), 'the stream continues where the global draw leaves it');
  }
  // masks drawn the same way: this rank's images get the masks a single process gives them
  const single = et.sampleMasks(6, 16, { ratio: 0.75, numMasks: 2, generator: et.Generator.create(3) });
  const g = et.Generator.create(3);
  g.rowShard = { rank: 1, size: 2 };
  const rankMasks = et.sampleMasks(3, 16, { ratio: 0.75, numMasks: 2, generator: g });
  assert.deepEqual(rankMasks.toArray(), [1, 3, 5].map((i) => (single.toArray() as unknown[])[i]));
});
