// The plain-PNG fast path (lib/io/png.ts, used by decodeImage): every row
// filter against the pixels that were encoded and against sharp's decode of
// the same file; what is not plain goes to sharp (null); decodeImage gives
// sharp's pixels and errors either way.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { decodePlainPng } from '../../lib/io/png';
import { decodeImage, rgbToGray } from '../../lib/data/image-folder';
import { resizeShorterAndCenterCrop } from '../../lib/data/preprocess';
import { tmpDir } from '../helpers/tmp-dir';

const hasCrc32 = typeof (zlib as unknown as { crc32?: unknown }).crc32 === 'function';
const skip = hasCrc32 ? false : 'this Node has no zlib.crc32, so the fast path is off';

function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE((zlib as unknown as { crc32(d: Uint8Array): number }).crc32(Buffer.concat([head.subarray(4), body])) >>> 0);
  return Buffer.concat([head, body, crc]);
}

/** A PNG of `pixels` (8-bit, gray or RGB) with every row filtered by `filter(y)`, and extra chunks before IDAT. */
function png(pixels: Uint8Array, width: number, height: number, channels: 1 | 3, filter: (y: number) => number, o: { extra?: Buffer[]; bitDepth?: number; interlace?: number; splitIdat?: boolean } = {}): Buffer {
  const stride = width * channels;
  const raw = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const f = filter(y);
    raw[y * (stride + 1)] = f;
    for (let x = 0; x < stride; x++) {
      const at = (yy: number, xx: number) => (yy >= 0 && xx >= 0 ? pixels[yy * stride + xx]! : 0);
      const left = at(y, x - channels), up = at(y - 1, x), corner = at(y - 1, x - channels);
      const p = left + up - corner;
      const paeth = Math.abs(p - left) <= Math.abs(p - up) && Math.abs(p - left) <= Math.abs(p - corner) ? left : Math.abs(p - up) <= Math.abs(p - corner) ? up : corner;
      const predicted = [0, left, up, (left + up) >> 1, paeth][f]!;
      raw[y * (stride + 1) + 1 + x] = (pixels[y * stride + x]! - predicted) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = o.bitDepth ?? 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  ihdr[12] = o.interlace ?? 0;
  const data = zlib.deflateSync(raw);
  const idat = o.splitIdat
    ? [chunk('IDAT', data.subarray(0, 10)), chunk('tEXt', Buffer.from('a\0b')), chunk('IDAT', data.subarray(10))]
    : [chunk('IDAT', data)];
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...(o.extra ?? []), ...idat, chunk('IEND', Buffer.alloc(0))]);
}

function randomPixels(n: number, seed: number): Uint8Array {
  let s = seed;
  return Uint8Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 0xff);
}

/** decodeImage's sharp path, as the oracle for its fast one. */
async function viaSharp(bytes: Uint8Array, channels: 1 | 3): Promise<Uint8Array> {
  const { data } = await sharp(bytes).flatten({ background: { r: 255, g: 255, b: 255 } }).toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
  return channels === 1 ? rgbToGray(rgb) : rgb;
}

test('every row filter of 8-bit gray and RGB PNGs decodes to the encoded pixels, as sharp decodes them, also through decodeImage', { skip }, async () => {
  for (const channels of [1, 3] as const) {
    for (const [width, height] of [[7, 5], [1, 1], [33, 9]] as const) {
      const pixels = randomPixels(width * height * channels, width * 31 + channels);
      for (const filter of [(y: number) => y % 5, () => 0, () => 1, () => 2, () => 3, () => 4]) {
        const bytes = png(pixels, width, height, channels, filter);
        const plain = decodePlainPng(bytes);
        assert.ok(plain !== null, `${width}x${height}x${channels} is plain`);
        assert.deepEqual([plain.width, plain.height, plain.channels], [width, height, channels]);
        assert.deepEqual(plain.data, pixels, `${width}x${height}x${channels}, filter ${filter(1)}`);
        for (const want of [1, 3] as const) {
          assert.deepEqual((await decodeImage(bytes, { channels: want })).data, await viaSharp(bytes, want), `decodeImage to ${want} channels`);
        }
      }
    }
  }
  // sharp's own encoder (adaptive filters), and a .png file read by path with a resize.
  const sharpPng = await sharp(Buffer.from(randomPixels(28 * 28 * 3, 5)), { raw: { width: 28, height: 28, channels: 3 } }).png({ adaptiveFiltering: true }).toBuffer();
  assert.ok(decodePlainPng(sharpPng) !== null);
  const file = path.join(tmpDir(), 'x.png');
  fs.writeFileSync(file, sharpPng);
  const fromFile = await decodeImage(file, { channels: 3, size: 14 });
  assert.deepEqual(fromFile, { data: await resizeShorterAndCenterCrop(await viaSharp(sharpPng, 3), 28, 28, 3, 14), height: 14, width: 14, channels: 3 });
});

test('what is not a plain PNG is left to sharp (null), and decodeImage still decodes or refuses it as sharp does', { skip }, async () => {
  const pixels = randomPixels(6 * 4 * 3, 9);
  const good = png(pixels, 6, 4, 3, () => 1);
  const gamma = Buffer.alloc(4);
  gamma.writeUInt32BE(45455);
  const cases: [string, Uint8Array][] = [
    ['a gAMA chunk', png(pixels, 6, 4, 3, () => 1, { extra: [chunk('gAMA', gamma)] })],
    ['a tRNS chunk', png(pixels, 6, 4, 3, () => 1, { extra: [chunk('tRNS', Buffer.from([0, 1, 0, 2, 0, 3]))] })],
    ['16-bit samples', png(pixels, 6, 4, 3, () => 0, { bitDepth: 16 })],
    ['Adam7 interlacing', png(pixels, 6, 4, 3, () => 0, { interlace: 1 })],
    ['IDAT chunks split by another', png(pixels, 6, 4, 3, () => 1, { splitIdat: true })],
    ['a bad CRC', (() => { const b = Buffer.from(good); b[b.length - 20] ^= 1; return b; })()],
    ['a truncated file', good.subarray(0, good.length - 15)],
    ['a palette', await sharp(Buffer.from(pixels), { raw: { width: 6, height: 4, channels: 3 } }).png({ palette: true }).toBuffer()],
    ['an alpha channel', await sharp(Buffer.from(randomPixels(6 * 4 * 4, 3)), { raw: { width: 6, height: 4, channels: 4 } }).png().toBuffer()],
    ['over 256 x 256 pixels', png(new Uint8Array(300 * 300), 300, 300, 1, () => 0)],
    ['a JPEG', await sharp(Buffer.from(pixels), { raw: { width: 6, height: 4, channels: 3 } }).jpeg().toBuffer()],
  ];
  for (const [what, bytes] of cases) {
    assert.equal(decodePlainPng(bytes), null, what);
    const ours = await decodeImage(bytes, { channels: 3 }).then((r) => r.data, (e: Error) => e.message);
    const theirs = await viaSharp(bytes, 3).catch((e: Error) => `Cannot decode image (${bytes.length} bytes): ${e.message}`);
    assert.deepEqual(ours, theirs, what);
  }
  assert.equal(decodePlainPng(good, 23), null, 'more pixels than maxPixels: sharp refuses it with its message');
  await assert.rejects(decodeImage(good, { maxPixels: 23 }), /Cannot decode image \(\d+ bytes\): Input image exceeds pixel limit/);
});
