// The small-sequence attention kernel (lib/tensor/small-attention.ts,
// native/small_attention.cc): values against PyTorch's
// F.scaled_dot_product_attention over the shapes its two paths and its
// chunks split differently, strided inputs (the views of a fused qkv), the
// output's layout, threads, NaN, bad input, operator traces, and which
// kernel inference attention takes (nn/attention.ts).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { multiHeadAttention } from '../../lib/nn/attention';
import { SMALL_ATTENTION_MAX_KEYS, smallAttention, smallAttentionAvailable, smallAttentionEnabled, smallAttentionFits } from '../../lib/tensor/small-attention';
import { runOracle } from '../helpers/oracle';
import { assertCloseToScale, assertMatchesOracle } from '../helpers/compare';
import { withEnv } from '../helpers/env';

// The kernel runs, and inference attention takes it unless the environment says otherwise.
const runs = smallAttentionAvailable();
const taken = smallAttentionEnabled();

/** fn with EXTREMA_INFERENCE_KERNELS set to `value`. */
const withKernelsEnv = <T>(value: string, fn: () => T): T => withEnv('EXTREMA_INFERENCE_KERNELS', value, fn);

// [B, H, queries, keys, head_dim]: a ViT block (50 tokens, 3 heads of 64)
// and its class-attention block (1 query); few queries (5, below a tile of
// 6); 7 queries (tiles of 4 and 3) over keys and features that are not a
// multiple of 16; keys and features past one chunk of 64; one key; and the
// kernel's limits.
const SHAPES: [number, number, number, number, number][] = [
  [1, 3, 50, 50, 64], [2, 3, 1, 50, 64], [3, 1, 5, 33, 20], [2, 4, 7, 65, 33], [1, 2, 13, 130, 80], [2, 2, 6, 1, 16], [1, 1, 9, SMALL_ATTENTION_MAX_KEYS, 256],
];

test('smallAttention matches F.scaled_dot_product_attention across its paths and chunk edges', { skip: runs ? false : 'the kernel does not run here' }, () => {
  et.manualSeed(21);
  const cases: { name: string; inputs: string[]; py: string; grad: boolean }[] = [];
  const inputs = new Map<string, et.Tensor>();
  const ours = new Map<string, et.Tensor>();
  SHAPES.forEach(([b, h, nq, nk, d], i) => {
    // Keys laid out [B, keys, H, D] and transposed: rows a head apart, as a fused qkv gives them.
    const q = et.randn([b, h, nq, d]);
    const k = et.randn([b, nk, h, d]).transpose(1, 2);
    const v = et.randn([b, h, nk, d]).mul(3);
    ours.set(`a${i}`, smallAttention(q, k, v));
    cases.push({ name: `a${i}`, inputs: ['q', 'k', 'v'], py: 'F.scaled_dot_product_attention(q, k, v)', grad: false });
    ours.set(`s${i}`, smallAttention(q, k, v, 0.3));
    cases.push({ name: `s${i}`, inputs: ['q', 'k', 'v'], py: 'F.scaled_dot_product_attention(q, k, v, scale=0.3)', grad: false });
    for (const [name, x] of Object.entries({ q, k, v })) for (const c of ['a', 's']) inputs.set(`${c}${i}/${name}`, x);
  });
  // The views of one fused qkv projection, [B, N, 3, H, D] permuted, as nn.Attention makes them.
  const qkv = et.randn([2, 50, 3, 3, 64]).permute(2, 0, 3, 1, 4);
  const [q, k, v] = qkv.unbind(0) as [et.Tensor, et.Tensor, et.Tensor];
  ours.set('fused', smallAttention(q, k, v));
  cases.push({ name: 'fused', inputs: ['q', 'k', 'v'], py: 'F.scaled_dot_product_attention(q, k, v)', grad: false });
  for (const [name, x] of Object.entries({ q, k, v })) inputs.set(`fused/${name}`, x);
  const theirs = runOracle('ops_oracle.py', { cases }, inputs);
  assertMatchesOracle(ours, theirs, cases.map((c) => c.name));
});

test('its output is laid out [B, queries, heads, D], so merging the heads is a view', { skip: runs ? false : 'the kernel does not run here' }, () => {
  const out = smallAttention(et.randn([2, 3, 10, 16]), et.randn([2, 3, 12, 16]), et.randn([2, 3, 12, 16]));
  assert.deepEqual(out.shape, [2, 3, 10, 16]);
  assert.equal(out.isContiguous, false);
  assert.equal(out.transpose(1, 2).isContiguous, true);
});

test('smallAttention gives bit-identical results on 1 and 2 threads', { skip: runs ? false : 'the kernel does not run here' }, () => {
  et.manualSeed(22);
  const q = et.randn([4, 3, 50, 64]), k = et.randn([4, 3, 50, 64]), v = et.randn([4, 3, 50, 64]);
  const threads = et.getNumThreads();
  try {
    et.setNumThreads(1);
    const one = smallAttention(q, k, v).toTypedArray<'float32'>();
    et.setNumThreads(2);
    const two = smallAttention(q, k, v).toTypedArray<'float32'>();
    assert.deepEqual(two, one);
  } finally {
    et.setNumThreads(threads);
  }
});

test('a NaN in a query makes its row NaN and leaves the others alone; empty batches give empty outputs', { skip: runs ? false : 'the kernel does not run here' }, () => {
  // Both paths: 2 queries (dot products) and 8 (tiles). PyTorch's math says NaN; ATen's flash kernel writes 0 there.
  for (const queries of [2, 8]) {
    et.manualSeed(23);
    const q = et.randn([1, 1, queries, 16]);
    q.select(2, 1).select(2, 5).fill_(NaN);
    const out = smallAttention(q, et.randn([1, 1, 10, 16]), et.randn([1, 1, 10, 16]));
    const rows = out.reshape(queries, 16).toTypedArray<'float32'>();
    for (let r = 0; r < queries; r++) {
      const row = Array.from(rows.subarray(r * 16, (r + 1) * 16));
      assert.ok(r === 1 ? row.every(Number.isNaN) : row.every(Number.isFinite), `${queries} queries, row ${r}: ${row.slice(0, 3).join(', ')}`);
    }
  }
  assert.deepEqual(smallAttention(et.randn([0, 2, 5, 8]), et.randn([0, 2, 6, 8]), et.randn([0, 2, 6, 8])).shape, [0, 2, 5, 8]);
});

test('smallAttention refuses what it does not take, with the reason', { skip: runs ? false : 'the kernel does not run here' }, () => {
  const q = et.randn([1, 2, 4, 8]), k = et.randn([1, 2, 6, 8]);
  assert.throws(() => smallAttention(q.to({ dtype: 'float64' }), k, k), /Expected float32 CPU tensors q \[B, H, Nq, D\].* but received q float64 \[1, 2, 4, 8\]/);
  assert.throws(() => smallAttention(q, k, et.randn([1, 2, 5, 8])), /but received .* v float32 \[1, 2, 5, 8\]/);
  assert.throws(() => smallAttention(q.reshape(2, 4, 8), k, k), /Expected float32 CPU tensors/);
  const many = et.randn([1, 1, SMALL_ATTENTION_MAX_KEYS + 1, 8]);
  assert.equal(smallAttentionFits(et.randn([1, 1, 2, 8]), many, many), false);
  assert.throws(() => smallAttention(et.randn([1, 1, 2, 8]), many, many), new RegExp(`1 <= Nk <= ${SMALL_ATTENTION_MAX_KEYS}`));
  assert.throws(() => smallAttention(q, k, k, Number.NaN), /Expected a finite number or null for "scale" of smallAttention but received/);
  assert.throws(() => smallAttention(q, k, {} as et.Tensor), /Expected a Tensor for "v" of smallAttention/);
  const gone = et.randn([1, 2, 6, 8]);
  gone.dispose();
  assert.throws(() => smallAttention(q, k, gone), /disposed/);
});

test('inference attention takes the kernel; gradients on, dropout or EXTREMA_INFERENCE_KERNELS=aten take ATen\'s', () => {
  et.manualSeed(24);
  const q = et.randn([2, 3, 50, 64]), k = et.randn([2, 3, 50, 64]), v = et.randn([2, 3, 50, 64]);
  const aten = et.scaledDotProductAttention(q, k, v).toTypedArray<'float32'>();
  const inference = et.inferenceMode(() => multiHeadAttention(q, k, v, 0, false).out.toTypedArray<'float32'>());
  if (taken) assert.deepEqual(inference, smallAttention(q, k, v).toTypedArray<'float32'>());
  else assert.deepEqual(inference, aten);
  et.manualSeed(5);
  const dropped = et.scaledDotProductAttention(q, k, v, { dropoutP: 0.5 }).toTypedArray<'float32'>();
  et.manualSeed(5);
  assert.deepEqual(et.noGrad(() => multiHeadAttention(q, k, v, 0.5, false).out.toTypedArray<'float32'>()), dropped);
  const grads = et.enableGrad(() => multiHeadAttention(q.requiresGrad_(), k, v, 0, false).out.toTypedArray<'float32'>());
  assert.deepEqual(grads, aten);
  q.requiresGrad_(false);
  assert.deepEqual(withKernelsEnv('aten', () => et.noGrad(() => multiHeadAttention(q, k, v, 0, false).out.toTypedArray<'float32'>())), aten);
  assert.equal(withKernelsEnv('aten', smallAttentionEnabled), false);
  assert.equal(withKernelsEnv('extrema', smallAttentionEnabled), runs);
  assert.throws(() => withKernelsEnv('flash', smallAttentionEnabled), /Expected "extrema" or "aten" for EXTREMA_INFERENCE_KERNELS but received the string "flash"/);
});

test('an operator trace records and replays the kernel', { skip: runs ? false : 'the kernel does not run here' }, () => {
  et.manualSeed(25);
  const attend = (x: et.Tensor) => {
    const [q, k, v] = x.reshape(1, 50, 3, 3, 64).permute(2, 0, 3, 1, 4).unbind(0) as [et.Tensor, et.Tensor, et.Tensor];
    return multiHeadAttention(q, k, v, 0, false).out.transpose(1, 2).reshape(1, 50, 192);
  };
  const x = et.randn([1, 50, 576]);
  const { trace, result } = et.inferenceMode(() => et.Trace.record([x], attend));
  const y = et.randn([1, 50, 576]);
  const replayed = et.inferenceMode(() => trace.run([y])[0]!);
  assert.deepEqual(replayed.toTypedArray<'float32'>(), et.inferenceMode(() => attend(y)).toTypedArray<'float32'>());
  assert.deepEqual(result.toTypedArray<'float32'>(), et.inferenceMode(() => attend(x)).toTypedArray<'float32'>());
  trace.dispose();
});

test('a ViT encoder\'s inference features with the kernel stay within float rounding of ATen\'s attention', { skip: runs ? false : 'the kernel does not run here' }, () => {
  et.manualSeed(26);
  const vit = new et.nn.VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 2, numHeads: 3, classAttentionLayers: 1, pooling: 'class-attention' });
  vit.eval();
  const images = et.randn([3, 1, 28, 28]);
  const ours = et.inferenceMode(() => vit.encode(images).instance);
  const aten = withKernelsEnv('aten', () => et.inferenceMode(() => vit.encode(images).instance));
  assertCloseToScale(ours, aten, 'ViT features', 1e-5);
});
