// decodeSmallPng, the main thread's decoder for small plain PNGs: the model
// input that prepareImage makes from the same pixels decoded by sharp, and
// null (the decoding thread's job) for anything it should not touch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { decodeSmallPng, prepareImage, type Target } from '../../lib/serve/prepare';
import { noise } from '../helpers/images';

const skip = (zlib as unknown as { crc32?: unknown }).crc32 === undefined ? 'this Node has no zlib.crc32, so the plain-PNG path is off' : false;

async function png(h: number, w: number, channels: 1 | 3, seed: number): Promise<{ file: Buffer; raw: Buffer }> {
  const raw = channels === 3 ? noise(h, w, seed) : Buffer.from(noise(h, w, seed).filter((_, i) => i % 3 === 0));
  return { file: await sharp(raw, { raw: { width: w, height: h, channels } }).png().toBuffer(), raw };
}

/** The oracle: prepareImage on the pixels as sharp decodes the file (its resize and crop, its channel conversion). */
async function expected(file: Buffer, to: Target): Promise<Uint8Array> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return prepareImage({ kind: 'pixels', bytes: new Uint8Array(data), height: info.height, width: info.width, channels: info.channels as 1 | 3 }, to);
}

test('small plain PNGs decode on the spot to the model input prepareImage makes from sharp\'s pixels', { skip }, async () => {
  const cases: [h: number, w: number, from: 1 | 3, to: 1 | 3, size: number, route: 'ready' | 'pixels'][] = [
    [28, 28, 1, 1, 28, 'ready'], // the size already: no crop
    [32, 32, 3, 3, 32, 'ready'],
    [28, 28, 3, 1, 28, 'ready'], // RGB to gray
    [16, 16, 1, 3, 16, 'ready'], // gray to RGB
    [16, 40, 3, 3, 16, 'ready'], // the shorter side fits: a crop only
    [45, 20, 1, 1, 20, 'ready'],
    [40, 40, 3, 3, 16, 'pixels'], // needs sharp's resize, on another thread
    [20, 31, 1, 3, 16, 'pixels'],
  ];
  for (const [i, [h, w, from, to, size, route]] of cases.entries()) {
    const { file } = await png(h, w, from, i);
    const target: Target = { size, channels: to, maxPixels: 40e6 };
    const got = decodeSmallPng(file, 4096, target);
    const what = `${h} x ${w} x ${from} to ${size} px x ${to}`;
    assert.ok(got !== null && route in got, `${what}: ${route}`);
    const input = 'ready' in got ? got.ready : await prepareImage(got.pixels, target);
    assert.deepEqual(input, await expected(file, target), `${what}: the model input`);
    // What the model thread would make of the same file.
    assert.deepEqual(input, await prepareImage({ kind: 'encoded', bytes: file }, target), `${what}: as prepareImage`);
  }
});

test('what the main thread should not decode is left to the decoding thread (null), before any large work', { skip }, async () => {
  const to: Target = { size: 28, channels: 1, maxPixels: 40e6 };
  const { file } = await png(28, 28, 1, 9);
  assert.ok(decodeSmallPng(file, 784, to) !== null, 'at the limit');
  assert.equal(decodeSmallPng(file, 783, to), null, 'one pixel over mainThreadPixels');
  assert.equal(decodeSmallPng(file, 4096, { ...to, maxPixels: 700 }), null, 'over the encoder\'s maxPixels: the decoding thread refuses it with the message');
  assert.equal(decodeSmallPng(file, 0, to), null, 'mainThreadPixels 0');
  assert.equal(decodeSmallPng(file.subarray(0, file.length - 20), 4096, to), null, 'truncated');
  assert.equal(decodeSmallPng(Buffer.alloc(0), 4096, to), null, 'empty');
  const jpeg = await sharp(noise(28, 28, 2), { raw: { width: 28, height: 28, channels: 3 } }).jpeg().toBuffer();
  assert.equal(decodeSmallPng(jpeg, 4096, to), null, 'a JPEG');
  const palette = await sharp(noise(28, 28, 3), { raw: { width: 28, height: 28, channels: 3 } }).png({ palette: true }).toBuffer();
  assert.equal(decodeSmallPng(palette, 4096, to), null, 'a palette PNG is not plain');
  // A small image padded with a large text chunk: refused from its length, before its checksum is computed.
  const text = Buffer.alloc(64 * 1024, 0x41);
  const chunk = Buffer.alloc(12 + text.length);
  chunk.writeUInt32BE(text.length, 0);
  chunk.write('tEXt', 4, 'latin1');
  text.copy(chunk, 8);
  chunk.writeUInt32BE(zlib.crc32(chunk.subarray(4, 8 + text.length)) >>> 0, 8 + text.length);
  const padded = Buffer.concat([file.subarray(0, 33), chunk, file.subarray(33)]);
  assert.ok(decodeSmallPng(padded, 64 * 64 * 4, to) !== null, 'a plain PNG with a text chunk, when the byte cap allows it');
  assert.equal(decodeSmallPng(padded, 4096, to), null, 'over the byte cap that 4096 pixels allow');
});
