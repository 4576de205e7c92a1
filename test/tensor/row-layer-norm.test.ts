// The inference LayerNorm kernel (lib/tensor/row-layer-norm.ts,
// native/row_layer_norm.cc): values against PyTorch's F.layer_norm over
// row widths that split its 16-float vectors differently, threads, NaN,
// bad input, operator traces, and which kernel nn.LayerNorm takes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { rowLayerNorm, rowLayerNormAvailable, rowLayerNormEnabled } from '../../lib/tensor/row-layer-norm';
import { runOracle } from '../helpers/oracle';
import { assertMatchesOracle } from '../helpers/compare';
import { withEnv } from '../helpers/env';

const runs = rowLayerNormAvailable();
const skip = runs ? false : 'the kernel does not run here (no AVX-512)';

// Widths: one token of the demo ViT's blocks (192), one not a multiple of 16
// (33), one float (1), exactly one vector (16), wider than most (300); the
// leading shapes of a batch of token rows.
const SHAPES: number[][] = [[1, 50, 192], [3, 7, 33], [5, 1], [2, 3, 16], [4, 300], [1, 192]];

test('rowLayerNorm matches F.layer_norm across row widths', { skip }, () => {
  et.manualSeed(31);
  const cases: { name: string; inputs: string[]; py: string; grad: boolean }[] = [];
  const inputs = new Map<string, et.Tensor>();
  const ours = new Map<string, et.Tensor>();
  SHAPES.forEach((shape, i) => {
    const n = shape[shape.length - 1]!;
    // An offset and a spread, as residual streams have: the variance must not lose to the mean.
    const x = et.randn(shape).mul(3).add(5);
    const w = et.randn([n]);
    const b = et.randn([n]);
    for (const [eps, tag] of [[1e-6, 'a'], [1e-5, 'b']] as const) {
      ours.set(`${tag}${i}`, rowLayerNorm(x, w, b, eps));
      cases.push({ name: `${tag}${i}`, inputs: ['x', 'w', 'b'], py: `F.layer_norm(x, (${n},), w, b, ${eps})`, grad: false });
      for (const [name, v] of Object.entries({ x, w, b })) inputs.set(`${tag}${i}/${name}`, v);
    }
  });
  // A strided input (a transposed view) is read as its values.
  const strided = et.randn([192, 10]).transpose(0, 1);
  const w = et.randn([192]), b = et.randn([192]);
  ours.set('strided', rowLayerNorm(strided, w, b, 1e-6));
  cases.push({ name: 'strided', inputs: ['x', 'w', 'b'], py: 'F.layer_norm(x, (192,), w, b, 1e-6)', grad: false });
  for (const [name, v] of Object.entries({ x: strided, w, b })) inputs.set(`strided/${name}`, v);
  const theirs = runOracle('ops_oracle.py', { cases }, inputs);
  assertMatchesOracle(ours, theirs, cases.map((c) => c.name));
});

test('rowLayerNorm gives bit-identical results on 1 and 2 threads; a NaN spoils its row only; empty inputs give empty outputs', { skip }, () => {
  et.manualSeed(32);
  const x = et.randn([2000, 192]);
  const w = et.randn([192]), b = et.randn([192]);
  const threads = et.getNumThreads();
  try {
    et.setNumThreads(1);
    const one = rowLayerNorm(x, w, b).toTypedArray<'float32'>();
    et.setNumThreads(2);
    assert.deepEqual(rowLayerNorm(x, w, b).toTypedArray<'float32'>(), one);
  } finally {
    et.setNumThreads(threads);
  }
  const y = et.randn([4, 40]);
  y.select(0, 2).select(0, 7).fill_(NaN);
  const rows = rowLayerNorm(y, et.ones([40]), et.zeros([40])).toTypedArray<'float32'>();
  for (let r = 0; r < 4; r++) {
    const row = Array.from(rows.subarray(r * 40, (r + 1) * 40));
    assert.ok(r === 2 ? row.every(Number.isNaN) : row.every(Number.isFinite), `row ${r}`);
  }
  assert.deepEqual(rowLayerNorm(et.randn([0, 8]), et.ones([8]), et.zeros([8])).shape, [0, 8]);
});

test('rowLayerNorm refuses what it does not take, with the reason', { skip }, () => {
  const x = et.randn([3, 8]), w = et.ones([8]), b = et.zeros([8]);
  assert.throws(() => rowLayerNorm(x.to({ dtype: 'float64' }), w, b), /Expected a float32 CPU x \[\.\.\., n\] with weight and bias \[n\] for rowLayerNorm but received x float64 \[3, 8\]/);
  assert.throws(() => rowLayerNorm(x, et.ones([7]), b), /weight float32 \[7\]/);
  assert.throws(() => rowLayerNorm(x, w, et.zeros([8, 1])), /bias float32 \[8, 1\]/);
  assert.throws(() => rowLayerNorm(x, w, b, -1), /Expected a finite eps >= 0 for rowLayerNorm but received number -1/);
  assert.throws(() => rowLayerNorm(x, w, b, Number.NaN), /Expected a finite eps >= 0/);
  const gone = et.ones([8]);
  gone.dispose();
  assert.throws(() => rowLayerNorm(x, gone, b), /disposed/);
});

test('nn.LayerNorm takes the kernel in inference passes; gradients on or EXTREMA_INFERENCE_KERNELS=aten take ATen\'s', () => {
  et.manualSeed(33);
  const norm = new et.nn.LayerNorm(192, 1e-6);
  et.noGrad(() => {
    norm.weight.copy_(et.randn([192]));
    norm.bias.copy_(et.randn([192]));
  });
  const x = et.randn([2, 50, 192]);
  const aten = et.layerNorm(x, [192], norm.weight, norm.bias, 1e-6).toTypedArray<'float32'>();
  const inference = et.inferenceMode(() => norm.forward(x).toTypedArray<'float32'>());
  if (rowLayerNormEnabled()) assert.deepEqual(inference, rowLayerNorm(x, norm.weight, norm.bias, 1e-6).toTypedArray<'float32'>());
  else assert.deepEqual(inference, aten);
  assert.deepEqual(norm.forward(x).toTypedArray<'float32'>(), aten, 'gradients on');
  assert.deepEqual(withEnv('EXTREMA_INFERENCE_KERNELS', 'aten', () => et.noGrad(() => norm.forward(x).toTypedArray<'float32'>())), aten);
  // Float64 inputs are not the kernel's: ATen's, in any mode.
  const x64 = x.to({ dtype: 'float64' });
  norm.to({ dtype: 'float64' });
  assert.deepEqual(et.noGrad(() => norm.forward(x64)).shape, [2, 50, 192]);
  norm.dispose();
});

test('an operator trace records and replays the kernel', { skip }, () => {
  et.manualSeed(34);
  const norm = new et.nn.LayerNorm(96);
  const x = et.randn([1, 50, 96]);
  const { trace, result } = et.inferenceMode(() => et.Trace.record([x], (t) => norm.forward(t)));
  const y = et.randn([1, 50, 96]);
  assert.deepEqual(et.inferenceMode(() => trace.run([y])[0]!).toTypedArray<'float32'>(), rowLayerNorm(y, norm.weight, norm.bias).toTypedArray<'float32'>());
  assert.deepEqual(result.toTypedArray<'float32'>(), rowLayerNorm(x, norm.weight, norm.bias).toTypedArray<'float32'>());
  trace.dispose();
  norm.dispose();
});
