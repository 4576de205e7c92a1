// Generators, threads and CUDA. CUDA checks run only where a GPU exists and
// are reported as skipped elsewhere.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { assertClose } from '../helpers/compare';

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
