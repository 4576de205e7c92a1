// IDX files: round trips of every dtype, gzipped and plain, and rejection of
// malformed files with messages that name the file.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as et from '../../lib';
import { tmpDir } from '../helpers/oracle';

/** IDX bytes written by hand: magic, big-endian dims, big-endian values. */
function idxBytes(code: number, shape: number[], values: number[]): Buffer {
  const size = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 }[code]!;
  const b = Buffer.alloc(4 + 4 * shape.length + size * values.length);
  b[2] = code;
  b[3] = shape.length;
  shape.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  let o = 4 + 4 * shape.length;
  for (const v of values) {
    if (code === 0x08) b.writeUInt8(v, o);
    else if (code === 0x09) b.writeInt8(v, o);
    else if (code === 0x0b) b.writeInt16BE(v, o);
    else if (code === 0x0c) b.writeInt32BE(v, o);
    else if (code === 0x0d) b.writeFloatBE(v, o);
    else b.writeDoubleBE(v, o);
    o += size;
  }
  return b;
}

test('IDX3 ubyte images round trip, plain and gzipped', () => {
  const dir = tmpDir();
  const [n, h, w] = [3, 4, 5];
  const pixels = Array.from({ length: n * h * w }, (_, i) => (i * 37 + 11) % 256);
  const plain = path.join(dir, 'images-idx3-ubyte');
  const gz = path.join(dir, 'images-idx3-ubyte.gz');
  fs.writeFileSync(plain, idxBytes(0x08, [n, h, w], pixels));
  fs.writeFileSync(gz, gzipSync(idxBytes(0x08, [n, h, w], pixels)));
  for (const file of [plain, gz]) {
    const a = et.data.readIdx(file);
    assert.equal(a.dtype, 'uint8');
    assert.deepEqual(a.shape, [n, h, w]);
    assert.ok(a.data instanceof Uint8Array);
    assert.deepEqual(Array.from(a.data), pixels);
    const imgs = et.loadIdxImages(file);
    assert.deepEqual([imgs.count, imgs.height, imgs.width, imgs.channels], [n, h, w, 1]);
    assert.deepEqual(Array.from(imgs.images), pixels);
    assert.equal(imgs.images.byteOffset, 0, 'a copy, not a view into the file buffer');
    assert.equal(imgs.images.buffer.byteLength, n * h * w);
  }
  fs.rmSync(dir, { recursive: true });
});

test('IDX1 labels and the other dtypes (big-endian) read back', () => {
  const dir = tmpDir();
  const labels = path.join(dir, 'labels-idx1-ubyte.gz');
  fs.writeFileSync(labels, gzipSync(idxBytes(0x08, [6], [9, 0, 3, 255, 1, 7])));
  assert.deepEqual(Array.from(et.loadIdxLabels(labels)), [9, 0, 3, 255, 1, 7]);
  const cases: [number, et.data.IdxDType, number[]][] = [
    [0x09, 'int8', [-128, -1, 0, 1, 127, 5]],
    [0x0b, 'int16', [-32768, -2, 0, 300, 32767, 12345]],
    [0x0c, 'int32', [-2147483648, -70000, 0, 1, 2147483647, 99]],
    [0x0d, 'float32', [-1.5, 0, 0.25, 3.5e10, -7, 1e-3]],
    [0x0e, 'float64', [Math.PI, -Math.E, 0, 1e300, -1e-300, 42]],
  ];
  for (const [code, dtype, values] of cases) {
    const file = path.join(dir, `${dtype}.idx`);
    fs.writeFileSync(file, idxBytes(code, [2, 3], values));
    const a = et.data.readIdx(file);
    assert.equal(a.dtype, dtype);
    assert.deepEqual(a.shape, [2, 3]);
    const expected = dtype === 'float32' ? values.map(Math.fround) : values;
    assert.deepEqual(Array.from(a.data), expected, dtype);
  }
  // An image loader is told when it is handed labels, and vice versa.
  assert.throws(() => et.loadIdxImages(labels), (e: Error) => e.message.includes(labels) && /Expected an N x H x W array of unsigned bytes .* but received 6 uint8/.test(e.message));
  const imgs = path.join(dir, 'imgs.idx');
  fs.writeFileSync(imgs, idxBytes(0x08, [1, 2, 2], [1, 2, 3, 4]));
  assert.throws(() => et.loadIdxLabels(imgs), /Expected a 1-dimensional array of unsigned bytes .* but received 1 x 2 x 2 uint8/);
  fs.rmSync(dir, { recursive: true });
});

test('malformed IDX files are rejected with an error naming the file', () => {
  const dir = tmpDir();
  const good = idxBytes(0x08, [2, 3, 3], Array.from({ length: 18 }, (_, i) => i));
  const cases: [string, Uint8Array, RegExp][] = [
    ['bad-magic', Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), good.subarray(4)]), /Expected IDX magic bytes 0x00 0x00 .* but received 0x50 0x4b 0x03 0x04 \(not an IDX file\)/],
    ['bad-dtype', Buffer.concat([Buffer.from([0, 0, 0x0a, 3]), good.subarray(4)]), /but received 0x00 0x00 0x0a 0x03/],
    ['too-short', good.subarray(0, 3), /Expected at least the 4 magic bytes .* but received 3 byte/],
    ['no-dims', Buffer.from([0, 0, 8, 0]), /Expected at least 1 dimension but received 0/],
    ['short-header', good.subarray(0, 10), /Expected a 16-byte header for 3 dimensions but received only 10 bytes \(truncated\)/],
    ['truncated', good.subarray(0, good.length - 5), /Expected 34 bytes \(16-byte header \+ 2 x 3 x 3 unsigned byte values\) but received 29 \(truncated: 5 bytes missing\)/],
    ['trailing', Buffer.concat([good, Buffer.alloc(2)]), /Expected 34 bytes .* but received 36 \(2 trailing bytes\)/],
    ['truncated-gz', gzipSync(good).subarray(0, 20), /Expected a complete gzip stream/],
    ['trailing-in-gz', gzipSync(Buffer.concat([good, Buffer.alloc(1)])), /1 trailing bytes/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    assert.throws(
      () => et.data.readIdx(file),
      (e: Error) => e instanceof et.data.IdxError && e.message.startsWith(`${file}: `) && pattern.test(e.message),
      name,
    );
  }
  assert.throws(() => et.data.readIdx(path.join(dir, 'missing.gz')), /Cannot read IDX file .*missing\.gz/);
  assert.throws(() => et.data.parseIdx(Buffer.from([1, 2, 3, 4, 5]), 'in-memory'), /^IdxError: in-memory: Expected IDX magic/);
  fs.rmSync(dir, { recursive: true });
});
