// Creation, dtypes, readback and conversion, checked against PyTorch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import * as internal from '../../lib/tensor/ops.internal.generated';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

test('creation functions equal their PyTorch counterparts', () => {
  const ours = {
    zeros: et.zeros([2, 3]),
    ones: et.ones([4], { dtype: 'int32' }),
    full: et.full([2, 2], 2.5, { dtype: 'float64' }),
    full_bool: et.full([3], true),
    eye: et.eye(3, 4),
    arange_int: et.arange(5),
    arange_float: et.arange(0, 1, 0.125),
    arange_neg: et.arange(10, 0, -3),
    linspace: et.linspace(-1, 1, 7),
    nested: et.tensor([[1, 2.5], [3, -4]]),
    nested_int: et.tensor([[1, 2], [3, 4]], { dtype: 'int64' }),
    nested_bool: et.tensor([true, false, true]),
    scalar: et.scalarTensor(3.25),
  };
  const theirs = runOracle('eval_oracle.py', {
    code: `
out['zeros'] = torch.zeros(2, 3)
out['ones'] = torch.ones(4, dtype=torch.int32)
out['full'] = torch.full((2, 2), 2.5, dtype=torch.float64)
out['full_bool'] = torch.full((3,), True)
out['eye'] = torch.eye(3, 4)
out['arange_int'] = torch.arange(5)
out['arange_float'] = torch.arange(0, 1, 0.125)
out['arange_neg'] = torch.arange(10, 0, -3)
out['linspace'] = torch.linspace(-1, 1, 7)
out['nested'] = torch.tensor([[1, 2.5], [3, -4]])
out['nested_int'] = torch.tensor([[1, 2], [3, 4]])
out['nested_bool'] = torch.tensor([True, False, True])
out['scalar'] = torch.tensor(3.25)
`,
  }, {});
  for (const [k, v] of Object.entries(ours)) assertClose(v, theirs.get(k)!, k, { atol: 0, rtol: 0 });
});

test('random draws with the same seed equal PyTorch bit for bit', () => {
  et.manualSeed(7);
  const a = et.randn([5]);
  const b = et.rand([2, 3]);
  const c = et.randint(0, 10, [6]);
  const d = et.randperm(8);
  const e = et.dropout(et.ones([12]), 0.5, true);
  const gen = et.Generator.create(99);
  const f = et.randn([4], { generator: gen });
  const theirs = runOracle('eval_oracle.py', {
    code: `
torch.manual_seed(7)
out['a'] = torch.randn(5)
out['b'] = torch.rand(2, 3)
out['c'] = torch.randint(0, 10, (6,))
out['d'] = torch.randperm(8)
out['e'] = F.dropout(torch.ones(12), 0.5, True)
g = torch.Generator().manual_seed(99)
out['f'] = torch.randn(4, generator=g)
`,
  }, {});
  for (const [k, v] of Object.entries({ a, b, c, d, e, f })) assertClose(v, theirs.get(k)!, k, { atol: 0, rtol: 0 });
});

test('every dtype round-trips through TypedArrays and casts like PyTorch', () => {
  const src = et.tensor([[-2.75, -1, 0], [0.5, 1.25, 300.5]], { dtype: 'float64' });
  const dtypes: et.DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool', 'int16', 'int8'];
  const ours: Record<string, et.Tensor> = {};
  for (const d of dtypes) ours[d] = src.to(d);
  const theirs = runOracle('eval_oracle.py', {
    code: `
src = x['src']
for d in ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool', 'int16', 'int8']:
    out[d] = src.to(getattr(torch, d))
`,
  }, { src });
  for (const d of dtypes) {
    const mine = ours[d]!;
    assert.equal(mine.dtype, d);
    assertClose(mine, theirs.get(d)!, d, { atol: 0, rtol: 0 });
    // bytes back and forth reproduce the tensor exactly
    const again = et.fromTypedArray(mine.toTypedArray(), mine.shape, { dtype: d });
    assert.ok(again.eq(mine).all().item(), `${d} round trip`);
  }
  assert.deepEqual(Array.from(ours.float16!.toTypedArray() as Uint16Array), Array.from(theirs.get('float16')!.toTypedArray() as Uint16Array));
  assert.deepEqual(ours.int64!.toTypedArray(), BigInt64Array.from([-2n, -1n, 0n, 0n, 1n, 300n]));
  // another dtype than the array's converts values, it does not reinterpret bytes
  assert.deepEqual(et.fromTypedArray(Int32Array.from([1, -2, 3]), [3], { dtype: 'float32' }).toArray(), [1, -2, 3]);
  assert.deepEqual(et.fromTypedArray(Uint8Array.from([0, 2, 1]), [3], { dtype: 'bool' }).toArray(), [false, true, true]);
});

test('readback: item, toArray, sync and async data', async () => {
  const t = et.tensor([[1, 2], [3, 4]]);
  assert.deepEqual(t.toArray(), [[1, 2], [3, 4]]);
  assert.equal(t.sum().item(), 10);
  assert.deepEqual(Array.from(await t.data<'float32'>()), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(t.t().dataSync<'float32'>()), [1, 3, 2, 4], 'non-contiguous views read in logical order');
  assert.deepEqual(et.tensor([true, false]).toArray(), [true, false]);
  assert.deepEqual(et.arange(3).toArray(), [0, 1, 2]);
  assert.throws(() => t.item(), /exactly one element/);
  assert.equal(t.shape.length, 2);
  assert.equal(t.numel, 4);
  assert.equal(t.ndim, 2);
  assert.equal(t.size(-1), 2);
  assert.equal(t.device, 'cpu');
  assert.deepEqual(t.strides, [2, 1]);
  assert.match(String(t), /shape=\[2, 2\], dtype=float32/);
});

test('in-place ops mutate the same object and storage', () => {
  const a = et.ones([3]);
  const b = a.view(3);
  const r = a.add_(2).mul_(et.tensor([1, 2, 3])).clamp_(0, 7);
  assert.equal(r, a);
  assert.deepEqual(b.toArray(), [3, 6, 7]);
  a.zero_().fill_(4);
  assert.deepEqual(b.toArray(), [4, 4, 4]);
  const c = et.zeros([2, 2]);
  c.copy_(et.tensor([[1, 2], [3, 4]]));
  assert.deepEqual(c.toArray(), [[1, 2], [3, 4]]);
  c.lerp_(et.zeros([2, 2]), 0.5);
  assert.deepEqual(c.toArray(), [[0.5, 1], [1.5, 2]]);
  // shape metadata follows shape-changing in-place ops
  const d = et.zeros([2, 3]);
  et.aten.unsqueeze_(d, 0);
  assert.deepEqual(d.shape, [1, 2, 3]);
});

test('the generated aten namespace reaches any operator', () => {
  const x = et.tensor([[3, 1], [2, 5]]);
  assert.deepEqual(et.aten.trace(x).item(), 8);
  assert.deepEqual(et.aten.diag(x, 0).toArray(), [3, 5]);
  const [values, indices] = et.aten.kthvalue(x, 1, 1);
  assert.deepEqual(values.toArray(), [1, 2]);
  assert.deepEqual(indices.toArray(), [1, 0]);
  // fused multi-tensor ops go through the same dispatcher door, from the
  // internal module lib/ code uses (they are not part of et.aten)
  const ps = [et.ones([2]), et.ones([3])];
  internal._foreach_mul__Scalar(ps, 3);
  assert.deepEqual(ps[1]!.toArray(), [3, 3, 3]);
  internal._foreach_add__ScalarList(ps, [1, 0.5]);
  assert.deepEqual(ps.map((p) => p.toArray()), [[4, 4], [3.5, 3.5, 3.5]]);
  // an EMA step over a parameter list in one call: q <- q + (1 - m)(p - q)
  const q = [et.zeros([2]), et.zeros([3])];
  internal._foreach_lerp__Scalar(q, ps, 0.25);
  assert.deepEqual(q.map((x) => x.toArray()), [[1, 1], [0.875, 0.875, 0.875]]);
});

test('version counts in-place writes on a tensor and its views, as PyTorch\'s _version; inference tensors have none (-1)', () => {
  const x = et.zeros([4]);
  const v0 = x.version;
  x.add_(1);
  assert.equal(x.version, v0 + 1);
  const view = x.narrow(0, 0, 2);
  view.mul_(3);
  assert.equal(x.version, v0 + 2, 'a write through a view bumps the base too');
  et.noGrad(() => x.copy_(et.ones([4])));
  assert.equal(x.version, v0 + 3);
  const y = x.add(1);
  assert.equal(y.version, 0, 'an out-of-place result starts at 0');
  assert.equal(et.inferenceMode(() => et.zeros([2])).version, -1);
});
