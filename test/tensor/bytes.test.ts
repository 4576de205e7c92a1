// Raw bytes in and out of tensors (what lib/io builds on), and the rule that
// only the tensor layer talks to the addon.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { fromBytes, toBytes } from '../../lib/tensor/bytes';

const ROOT = path.resolve(__dirname, '..', '..', '..');

test('fromBytes reads little-endian elements; toBytes writes them back', () => {
  const bytes = Buffer.alloc(12);
  [1.5, -2, 1e6].forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  const t = fromBytes(bytes, [3], 'float32');
  assert.deepEqual(t.toArray(), [1.5, -2, 1e6]);
  assert.deepEqual(Buffer.from(toBytes(t)), bytes);

  const wide = Buffer.alloc(16);
  wide.writeBigInt64LE(-(2n ** 62n), 0);
  wide.writeBigInt64LE(7n, 8);
  assert.deepEqual(fromBytes(wide, [2, 1], 'int64').toTypedArray(), new BigInt64Array([-(2n ** 62n), 7n]));
  // a view at an offset reads only its own bytes
  assert.deepEqual(fromBytes(new Uint8Array([9, 1, 2, 3, 4]).subarray(1), [2, 2], 'uint8').toArray(), [[1, 2], [3, 4]]);
  assert.equal(fromBytes(new Uint8Array(0), [0, 3], 'float64').numel, 0);
});

test('toBytes makes strided and transposed tensors contiguous and covers its whole buffer', () => {
  const t = et.arange(6, undefined, 1, { dtype: 'int16' }).view(2, 3).t();
  const out = toBytes(t);
  assert.equal(out.byteOffset, 0);
  assert.equal(out.buffer.byteLength, out.byteLength);
  assert.deepEqual(Array.from(new Int16Array(out.buffer)), [0, 3, 1, 4, 2, 5]);
});

test('fromBytes names what is wrong', () => {
  assert.throws(() => fromBytes(new Uint8Array(5), [2], 'float32'), /Expected 8 bytes of data for a tensor of shape \[2\] and dtype Float but received 5/);
  assert.throws(() => fromBytes(new Uint8Array(4), [1], 'float24' as et.DType), /Expected a dtype .* for "dtype" but received the string "float24"/);
  assert.throws(() => fromBytes(new DataView(new ArrayBuffer(4)), [1], 'float32'), /Expected a TypedArray or Buffer for "bytes" but received an instance of DataView/);
  assert.throws(() => toBytes({} as et.Tensor), /Expected a Tensor for "t"/);
});

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test('only lib/tensor, lib/runtime and lib/autograd import the native addon', () => {
  const lib = path.join(ROOT, 'lib');
  const allowed = ['tensor', 'runtime', 'autograd'].map((d) => path.join(lib, d) + path.sep);
  const offenders = tsFiles(lib).filter((f) => {
    if (f === path.join(lib, 'native.ts') || allowed.some((d) => f.startsWith(d))) return false;
    return /from '(\.\.?\/)+native'|require\(['"][^'"]*\/native['"]\)|Tensor\._wrap\(/.test(fs.readFileSync(f, 'utf8'));
  });
  assert.deepEqual(offenders.map((f) => path.relative(ROOT, f)), []);
});
