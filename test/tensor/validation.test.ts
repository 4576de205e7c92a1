// Arguments that used to be ignored or silently wrapped now give clear errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { runPython } from '../helpers/oracle';

test('size() takes integer dims, negative ones counting from the end', () => {
  const x = et.zeros([2, 3, 4]);
  assert.deepEqual([x.size(0), x.size(2), x.size(-1), x.size(-3)], [2, 4, 4, 2]);
  for (const bad of [NaN, 1.5, 'x', x, null, undefined]) {
    assert.throws(() => x.size(bad as number), { name: 'TypeError', message: /Expected an integer for "dim" of size\(\) but received/ });
  }
  assert.throws(() => x.size(3), { name: 'RangeError', message: /^Dimension 3 is out of range for a tensor with 3 dimensions \(expected -3 to 2\)$/ });
  assert.throws(() => x.size(-4), { name: 'RangeError', message: /^Dimension -4 is out of range for a tensor with 3 dimensions/ });
  assert.throws(() => et.scalarTensor(1).size(0), { name: 'RangeError', message: /0 dimensions \(expected none\)/ });
});

test('to() refuses targets it would otherwise ignore', () => {
  const x = et.zeros([2]);
  assert.throws(() => x.to(['int64'] as unknown as et.DType), { name: 'TypeError', message: /Expected a device, a dtype or an options object .* but received an array of length 1/ });
  assert.throws(() => x.to(new Map() as unknown as et.ToOptions), { name: 'TypeError', message: /but received an instance of Map/ });
  assert.throws(() => x.to({ dtyp: 'int64' } as unknown as et.ToOptions), { name: 'TypeError', message: /^Unknown option "dtyp" for to\(\)/ });
  assert.throws(() => x.to({ dtype: 'int64', copy: 'yes' } as unknown as et.ToOptions), { name: 'TypeError', message: /Expected a boolean for "copy" of to\(\)/ });
  assert.throws(() => x.to(3 as unknown as et.DType), { name: 'TypeError' });
  assert.equal(x.to({ dtype: 'int64' }).dtype, 'int64');
  assert.equal(x.to(Object.assign(Object.create(null) as object, { dtype: 'int32' }) as et.ToOptions).dtype, 'int32');
  assert.equal(x.to({}).dtype, 'float32');
});

test('tensor() refuses integers outside the dtype, as torch.tensor does', () => {
  assert.throws(() => et.tensor([300, -1], { dtype: 'uint8' }), { name: 'RangeError', message: /^Expected values from 0 to 255 for a tensor of dtype uint8 but element 0 is 300$/ });
  assert.throws(() => et.tensor([[0, 1], [2, -1]], { dtype: 'uint8' }), /element 3 is -1/);
  assert.throws(() => et.tensor([255.5], { dtype: 'uint8' }), /element 0 is 255.5/);
  assert.throws(() => et.tensor([128], { dtype: 'int8' }), /from -128 to 127 .* int8/);
  assert.throws(() => et.tensor([-32769], { dtype: 'int16' }), /from -32768 to 32767 .* int16/);
  assert.throws(() => et.tensor([2 ** 31], { dtype: 'int32' }), /int32 but element 0 is 2147483648/);
  assert.throws(() => et.tensor([2 ** 63], { dtype: 'int64' }), /to 2\^63 - 1 for a tensor of dtype int64/);
  assert.throws(() => et.tensor([NaN], { dtype: 'int64' }), /element 0 is NaN/);
  assert.throws(() => et.tensor([Infinity], { dtype: 'int32' }), /element 0 is Infinity/);
  // the edges themselves are fine; bool takes any number, as PyTorch does
  const ours = {
    u8: et.tensor([0, 255, 7.9], { dtype: 'uint8' }),
    i8: et.tensor([-128, 127, -1.5], { dtype: 'int8' }),
    i64: et.tensor([-(2 ** 63), 2 ** 62], { dtype: 'int64' }),
    b: et.tensor([300, -1, 0], { dtype: 'bool' }),
  };
  const theirs = JSON.parse(runPython(`
import json, torch
print(json.dumps({
  'u8': torch.tensor([0, 255, 7.9], dtype=torch.uint8).tolist(),
  'i8': torch.tensor([-128, 127, -1.5], dtype=torch.int8).tolist(),
  'i64': torch.tensor([-(2 ** 63), 2 ** 62], dtype=torch.int64).tolist(),
  'b': torch.tensor([300, -1, 0], dtype=torch.bool).tolist(),
}))`)) as Record<string, unknown>;
  for (const [k, t] of Object.entries(ours)) assert.deepEqual(t.toArray(), theirs[k], k);
});

test('fromTypedArray copies views on a SharedArrayBuffer', () => {
  const shared = new Float32Array(new SharedArrayBuffer(24), 4, 4);
  shared.set([1, 2, 3, 4]);
  const t = et.fromTypedArray(shared, [2, 2]);
  shared[0] = 99; // a copy: later writes do not reach the tensor
  assert.deepEqual(t.toArray(), [[1, 2], [3, 4]]);
  const ints = new Int32Array(new SharedArrayBuffer(8));
  ints.set([5, -6]);
  assert.deepEqual(et.tensor(ints).toArray(), [5, -6]);
  assert.deepEqual(et.fromTypedArray(ints, [2], { dtype: 'float64' }).toArray(), [5, -6]);
});
