// Image folders: deterministic listing, class folders, and decoding with
// sharp (lossless exactness, grayscale, alpha flattening, broken files).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import * as et from '../../lib';
import { tmpDir } from '../helpers/oracle';

function pattern(h: number, w: number, c: number, seed = 1): Buffer {
  const b = Buffer.alloc(h * w * c);
  let s = seed;
  for (let i = 0; i < b.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

async function writeRaw(file: string, raw: Buffer, h: number, w: number, c: 1 | 2 | 3 | 4): Promise<void> {
  const img = sharp(raw, { raw: { width: w, height: h, channels: c } });
  const ext = path.extname(file).toLowerCase();
  const out = ext === '.png' ? img.png() : ext === '.webp' ? img.webp({ lossless: true }) : ext === '.gif' ? img.gif() : ext === '.tif' || ext === '.tiff' ? img.tiff({ compression: 'lzw' }) : img.jpeg();
  await out.toFile(file);
}

function touch(file: string, content = 'x'): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

test('listImageFiles: image extensions only, any case, sorted by relative path in code-unit order', () => {
  const root = tmpDir();
  const names = ['b.PNG', 'a.jpg', 'B.jpeg', 'a/z.webp', 'a/b/c.tif', 'a.b/x.gif', 'Z.avif', '_.png', 'é.png', 'a0.jfif'];
  for (const n of names) touch(path.join(root, n));
  for (const n of ['notes.txt', 'model.safetensors', 'c.svg', 'd.bmp', '.hidden.png', '.cache/e.png', 'noext']) touch(path.join(root, n));
  const rel = (files: string[]) => files.map((f) => path.relative(root, f).split(path.sep).join('/'));
  assert.deepEqual(rel(et.listImageFiles(root)), ['B.jpeg', 'Z.avif', '_.png', 'a.b/x.gif', 'a.jpg', 'a/b/c.tif', 'a/z.webp', 'a0.jfif', 'b.PNG', 'é.png']);
  assert.deepEqual(rel(et.listImageFiles(root, { recursive: false })), ['B.jpeg', 'Z.avif', '_.png', 'a.jpg', 'a0.jfif', 'b.PNG', 'é.png']);
  assert.ok(et.listImageFiles(root).every((f) => f.startsWith(root + path.sep)));
  // A symbolic link cycle is walked once.
  fs.symlinkSync(root, path.join(root, 'a', 'loop'));
  assert.equal(et.listImageFiles(root).length, 10);
  assert.throws(() => et.listImageFiles(path.join(root, 'missing')), /Expected an image folder but .*missing does not exist/);
  assert.throws(() => et.listImageFiles(path.join(root, 'a.jpg')), /is not a directory/);
  fs.rmSync(root, { recursive: true });
});

test('listClassFolder: sorted classes, files grouped by class, labels', () => {
  const root = tmpDir();
  for (const n of ['dog/2.jpg', 'dog/1.png', 'cat/b.png', 'cat/sub/a.png', 'Bird/x.webp', 'loose.png', '.git/y.png']) touch(path.join(root, n));
  const { files, labels, classes } = et.listClassFolder(root);
  assert.deepEqual(classes, ['Bird', 'cat', 'dog']);
  assert.deepEqual(files.map((f) => path.relative(root, f).split(path.sep).join('/')), ['Bird/x.webp', 'cat/b.png', 'cat/sub/a.png', 'dog/1.png', 'dog/2.jpg']);
  assert.deepEqual(labels, [0, 1, 1, 2, 2]);
  fs.mkdirSync(path.join(root, 'empty'));
  assert.throws(() => et.listClassFolder(root), /Expected image files .* in class folder .*empty but found none/);
  const flat = tmpDir();
  touch(path.join(flat, 'a.png'));
  assert.throws(() => et.listClassFolder(flat), /found no sub-folders/);
  fs.rmSync(root, { recursive: true });
  fs.rmSync(flat, { recursive: true });
});

test('decodeImage: lossless formats give back the exact pixels, RGB and gray', async () => {
  const dir = tmpDir();
  const [h, w] = [7, 9];
  const rgb = pattern(h, w, 3);
  for (const ext of ['.png', '.webp', '.tiff']) {
    const file = path.join(dir, `rgb${ext}`);
    await writeRaw(file, rgb, h, w, 3);
    const img = await et.decodeImage(file);
    assert.deepEqual([img.height, img.width, img.channels], [h, w, 3], ext);
    assert.ok(img.data instanceof Uint8Array);
    assert.deepEqual(Buffer.from(img.data), rgb, `${ext} pixels`);
  }
  // Grayscale: the ITU-R 601 luma of each pixel.
  const file = path.join(dir, 'rgb.png');
  const gray = await et.decodeImage(file, { channels: 1 });
  assert.deepEqual([gray.height, gray.width, gray.channels], [h, w, 1]);
  for (let i = 0; i < h * w; i++) {
    const expected = Math.round((299 * rgb[3 * i]! + 587 * rgb[3 * i + 1]! + 114 * rgb[3 * i + 2]!) / 1000);
    assert.equal(gray.data[i], expected, `gray pixel ${i}`);
  }
  const red = et.data.rgbToGray(new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0]));
  assert.deepEqual(Array.from(red), [76, 150, 29, 255, 0]);
  // A one-channel PNG reads back exactly as gray, and as three equal channels.
  const g = pattern(h, w, 1, 7);
  const gfile = path.join(dir, 'gray.png');
  await sharp(g, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toFile(gfile);
  assert.equal((await sharp(gfile).metadata()).channels, 1);
  assert.deepEqual(Buffer.from((await et.decodeImage(gfile, { channels: 1 })).data), g);
  const g3 = await et.decodeImage(gfile);
  assert.equal(g3.channels, 3);
  assert.deepEqual(Buffer.from(g3.data), Buffer.from(et.data.grayToRgb(g)));
  // A 16-bit PNG (written by hand) is scaled to 8 bits.
  const p16 = path.join(dir, 'deep.png');
  fs.writeFileSync(p16, png16Gray(2, 2, [0, 257 * 100, 257 * 200, 65535]));
  assert.deepEqual(Array.from((await et.decodeImage(p16, { channels: 1 })).data), [0, 100, 200, 255]);
  // With size, the eval transform is applied.
  const sized = await et.decodeImage(file, { size: 5 });
  assert.deepEqual([sized.height, sized.width, sized.channels, sized.data.length], [5, 5, 3, 75]);
  fs.rmSync(dir, { recursive: true });
});

function png16Gray(w: number, h: number, values: number[]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 16; // bit depth; colour type 0 (gray), default compression/filter/interlace
  const rows = Buffer.alloc(h * (1 + 2 * w));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rows.writeUInt16BE(values[y * w + x]!, y * (1 + 2 * w) + 1 + 2 * x);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

test('decodeImage: transparency is flattened onto white', async () => {
  const dir = tmpDir();
  const rgba = Buffer.from([255, 0, 0, 0, /**/ 0, 255, 0, 255, /**/ 0, 0, 255, 128, /**/ 10, 20, 30, 64]);
  const file = path.join(dir, 'emoji.png');
  await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toFile(file);
  const img = await et.decodeImage(file);
  assert.equal(img.channels, 3);
  const px = Array.from(img.data);
  assert.deepEqual(px.slice(0, 3), [255, 255, 255], 'fully transparent: white, not the stored red');
  assert.deepEqual(px.slice(3, 6), [0, 255, 0], 'opaque: unchanged');
  // Half transparent: alpha-blended with white, within a level of rounding.
  const blend = (v: number, a: number) => (v * a + 255 * (255 - a)) / 255;
  [blend(0, 128), blend(0, 128), blend(255, 128), blend(10, 64), blend(20, 64), blend(30, 64)].forEach((v, i) => {
    assert.ok(Math.abs(px[6 + i]! - v) <= 1, `pixel value ${i}: ${px[6 + i]} vs ${v}`);
  });
  const gray = await et.decodeImage(file, { channels: 1 });
  assert.equal(gray.data[0], 255);
  fs.rmSync(dir, { recursive: true });
});

test('decodeImage: truncated files and non-images reject with the file name', async () => {
  const dir = tmpDir();
  const png = path.join(dir, 'full.png');
  const jpg = path.join(dir, 'full.jpg');
  await writeRaw(png, pattern(32, 32, 3), 32, 32, 3);
  await writeRaw(jpg, pattern(32, 32, 3), 32, 32, 3);
  assert.equal((await et.decodeImage(jpg)).data.length, 32 * 32 * 3);
  const cutPng = path.join(dir, 'cut.png');
  const cutJpg = path.join(dir, 'cut.jpg');
  const text = path.join(dir, 'notes.png');
  fs.writeFileSync(cutPng, fs.readFileSync(png).subarray(0, 200));
  fs.writeFileSync(cutJpg, fs.readFileSync(jpg).subarray(0, 400));
  fs.writeFileSync(text, 'definitely not an image\n');
  for (const file of [cutPng, cutJpg, text, path.join(dir, 'missing.png')]) {
    await assert.rejects(et.decodeImage(file), (e: Error) => e.message.startsWith(`Cannot decode image ${file}: `), file);
  }
  await assert.rejects(et.decodeImage(png, { channels: 2 as 3 }), /Expected 1 or 3 channels but received 2/);
  fs.rmSync(dir, { recursive: true });
});
