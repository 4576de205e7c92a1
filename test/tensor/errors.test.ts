// Bad input gives a JS error that names what was wrong, never a crash.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { native } from '../../lib/native';

test('shape mismatches name the shapes', () => {
  assert.throws(() => et.zeros([2, 3]).add(et.zeros([4])), /size of tensor a \(3\) must match the size of tensor b \(4\)/);
  assert.throws(() => et.zeros([2, 3]).matmul(et.zeros([2, 3])), /cannot be multiplied/);
  assert.throws(() => et.linear(et.zeros([2, 3]), et.zeros([4, 5])), /input has 3 features but weight expects 5/);
  assert.throws(() => et.zeros([2, 3]).view(7), /invalid for input of size 6/);
  assert.throws(() => et.layerNorm(et.zeros([2, 3]), [4]), /does not match the end of input shape/);
  assert.throws(() => et.conv2d(et.zeros([3]), et.zeros([1, 1, 1, 1])), /3-D or 4-D "input"/);
});

test('dtype and device problems are reported in JS terms', () => {
  assert.throws(() => et.zeros([2], { dtype: 'float128' as et.DType }), /Expected a dtype .* but received the string "float128"/);
  assert.throws(() => et.zeros([2]).to('gpu' as et.Device), /Expected a device such as "cpu"/);
  assert.throws(() => et.zeros([2], { device: 'cuda:x' as et.Device }), /Expected a device/);
  assert.throws(() => et.crossEntropy(et.zeros([2, 3]), et.zeros([2])), /Expected|expected/);
  assert.throws(() => et.autocast('cpu', 'float32', () => 1), /float16 or bfloat16/);
  assert.throws(() => et.zeros([2]).gather(0, et.zeros([2])), /int64|Long/i);
  assert.throws(() => et.linear(et.zeros([2, 3]), et.zeros([4, 3], { dtype: 'int64' })), /Expected a tensor of dtype float32 for "weight" of linear but received int64/);
  assert.throws(() => et.conv2d(et.zeros([1, 1, 4, 4]), et.zeros([1, 1, 2, 2], { dtype: 'float64' })), /dtype float32 for "weight" of conv2d but received float64/);
  assert.equal(et.autocast('cpu', 'bfloat16', () => et.linear(et.zeros([2, 3], { dtype: 'bfloat16' }), et.zeros([4, 3])).dtype), 'bfloat16');
});

test('wrong argument types are caught before crossing into C++', () => {
  assert.throws(() => et.aten.add_Tensor(et.zeros([1]), 3 as unknown as et.Tensor), /Expected a Tensor for "other" of aten::add.Tensor but received number 3/);
  assert.throws(() => et.zeros([1]).add('x' as unknown as number), /Expected a Tensor or a number for "other" of add/);
  assert.throws(() => et.zeros([-1]), /non-negative integer sizes/);
  assert.throws(() => et.zeros([1.5]), /non-negative integer sizes/);
  assert.throws(() => et.fromTypedArray(new Float32Array(5), [2, 3]), /Expected 6 elements for shape \[2, 3\] but received 5/);
  assert.throws(() => et.tensor([[1, 2], [3]]), /Ragged nested array/);
  assert.throws(() => et.randint(5, 5, [2]), /low < high/);
  assert.throws(() => et.slice(0, 4, 0), /positive integer step/);
  assert.throws(() => et.zeros([2, 2]).index(0, 0, 0), /Too many indices/);
  assert.throws(() => et.zeros([2, 2]).index(5), /out of bounds/);
  assert.throws(() => et.Generator.create(-1), /non-negative integer seed/);
  assert.throws(() => et.setNumThreads(0), /positive integer/);
});

test('the native layer itself rejects bad handles and arguments with JS errors', () => {
  assert.throws(() => native.call(999999), /Unknown operator id/);
  assert.throws(() => native.lookupOp('aten::no_such_op', ''), /Unknown operator aten::no_such_op/);
  const add = native.lookupOp('aten::add', 'Tensor');
  const a = et.ones([1]);
  assert.throws(() => native.call(add, a.id, 12345.5), /disposed|Expected/);
  assert.throws(() => native.call(add, a.id, 'nope'), /Expected a tensor for argument 'other' of aten::add.Tensor but received the string "nope"/);
  assert.throws(() => native.call(add, a.id), /Missing required argument 'other'|Expected a tensor for argument 'other' of aten::add.Tensor but received undefined/);
  const view = native.lookupOp('aten::view', '');
  assert.throws(() => native.call(view, a.id), /Missing required argument 'size' of aten::view/);
  assert.equal(native.opIsFast(add), true, 'add.Tensor takes the unboxed fast path');
  assert.equal(native.opIsFast(view), false);
  assert.throws(() => native.call(add, a.id, a.id, 1, 2, 3), /takes 3 arguments but received 5/);
  assert.throws(() => native.release(123456789), /already been disposed/);
  assert.throws(() => native.fromBuffer(new Float32Array(2), [3], 6), /Expected 12 bytes/);
  // c10 errors arrive without the C++ backtrace
  try {
    et.zeros([2]).add(et.zeros([3]));
    assert.fail('expected a throw');
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.doesNotMatch(e.message, /Exception raised from|frame #/);
  }
});
