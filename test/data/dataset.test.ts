// The one dataset reader (IDX files, image folders, image files) read in order by the
// loader's eval mode and normalised by normalizeImages.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import * as et from '../../lib';
import { tmpDir } from '../helpers/oracle';

function idx3(n: number, h: number, w: number, pixel: (i: number) => number): Buffer {
  const b = Buffer.alloc(16 + n * h * w);
  b[2] = 0x08;
  b[3] = 3;
  b.writeUInt32BE(n, 4);
  b.writeUInt32BE(h, 8);
  b.writeUInt32BE(w, 12);
  for (let i = 0; i < n * h * w; i++) b[16 + i] = pixel(i);
  return b;
}

const pixel = (i: number) => (i * 31 + (i >> 7)) % 256;

interface Normalised {
  images: et.Tensor;
  index: number;
  count: number;
  files?: string[];
}

/** Eval batches of a dataset, normalised as the evaluation path does it. */
async function* normalisedBatches(data: et.data.ImageDataset, batchSize: number, o: { start?: number; end?: number } = {}): AsyncGenerator<Normalised> {
  for await (const b of new et.DataLoader(data, { mode: 'eval', batchSize, ...o }).batches()) {
    const images = et.normalizeImages(b.images);
    b.images.dispose();
    b.labels?.dispose();
    yield { images, index: b.indices[0]!, count: b.indices.length, ...(data.files ? { files: b.indices.map((i) => data.files![i]!) } : {}) };
  }
}

test('an IDX file in eval mode: batches of 4, 4, 2 in order with exact pixels', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 't10k-images-idx3-ubyte.gz');
  fs.writeFileSync(file, gzipSync(idx3(10, 28, 28, pixel)));
  const before = et.memory().liveTensors;
  const src = et.openDataset(file, { size: 28 });
  assert.equal(src.kind, 'idx');
  assert.equal(src.count, 10);
  assert.equal(src.channels, 1);
  assert.equal(src.files, null);
  assert.equal(src.labels, null);
  assert.match(src.describe, /IDX file .*: 10 images, 28 x 28, 1 channel$/);
  const seen: [number, number][] = [];
  for await (const batch of normalisedBatches(src, 4)) {
    seen.push([batch.index, batch.count]);
    assert.deepEqual(batch.images.shape, [batch.count, 1, 28, 28]);
    assert.equal(batch.images.dtype, 'float32');
    const v = batch.images.toTypedArray() as Float32Array;
    for (let i = 0; i < v.length; i++) {
      const expected = (pixel(batch.index * 784 + i) / 255 - 0.5) / 0.5;
      if (Math.abs(v[i]! - expected) > 1e-6) assert.fail(`batch ${batch.index} value ${i}: ${v[i]} vs ${expected}`);
    }
    assert.equal(batch.files, undefined);
    batch.images.dispose();
  }
  assert.deepEqual(seen, [[0, 4], [4, 4], [8, 2]]);
  // Three channels (gray replicated), ImageNet statistics, a sub-range, another size.
  const counts: number[] = [];
  for await (const batch of normalisedBatches(et.openDataset({ kind: 'idx', file }, { size: 14, channels: 3 }), 3, { start: 2, end: 7 })) {
    counts.push(batch.index, batch.count);
    assert.deepEqual(batch.images.shape, [batch.count, 3, 14, 14]);
    // Same gray in each channel, so x * std + mean agrees across channels.
    const spread = et.scope(() => {
      const [r, g, b] = batch.images.unbind(1);
      const vr = r!.mul(0.229).add(0.485);
      return Math.max(vr.sub(g!.mul(0.224).add(0.456)).abs().max().item(), vr.sub(b!.mul(0.225).add(0.406)).abs().max().item());
    });
    assert.ok(spread < 1e-6, `channel spread ${spread}`);
    batch.images.dispose();
  }
  assert.deepEqual(counts, [2, 3, 5, 2]);
  assert.equal(et.memory().liveTensors, before);
  assert.throws(() => new et.DataLoader(src, { mode: 'eval', batchSize: 0 }), /Expected a positive integer for "batchSize" of the data loader but received number 0/);
  fs.rmSync(dir, { recursive: true });
});

test('a folder in eval mode matches decodeImage + toNormalizedTensor item by item', async () => {
  const dir = tmpDir();
  const sizes = [[20, 30], [16, 16], [33, 17], [16, 40], [50, 50]];
  const names = ['e.png', 'd.webp', 'c.jpg', 'b/a.png', 'a.png'];
  for (let k = 0; k < names.length; k++) {
    const [h, w] = sizes[k]!;
    const raw = Buffer.alloc(h! * w! * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * (k + 3) + k * 50) % 256;
    fs.mkdirSync(path.dirname(path.join(dir, names[k]!)), { recursive: true });
    await sharp(raw, { raw: { width: w!, height: h!, channels: 3 } }).toFile(path.join(dir, names[k]!));
  }
  const src = et.openDataset(dir, { size: 16 });
  assert.equal(src.kind, 'folder');
  assert.equal(src.labels, null, 'a folder with images of its own is flat, not the class layout');
  assert.equal(src.count, 5);
  assert.equal(src.channels, 3);
  const rel = src.files!.map((f) => path.relative(dir, f).split(path.sep).join('/'));
  assert.deepEqual(rel, ['a.png', 'b/a.png', 'c.jpg', 'd.webp', 'e.png']);
  const before = et.memory().liveTensors;
  let next = 0;
  for await (const batch of normalisedBatches(src, 2)) {
    assert.equal(batch.index, next);
    assert.deepEqual(batch.files, src.files!.slice(next, next + batch.count));
    assert.deepEqual(batch.images.shape, [batch.count, 3, 16, 16]);
    const got = batch.images.toTypedArray() as Float32Array;
    for (let j = 0; j < batch.count; j++) {
      const img = await et.decodeImage(src.files![next + j]!, { size: 16 });
      const t = et.toNormalizedTensor(img.data, 1, 16, 16, 3, [...et.IMAGENET_MEAN], [...et.IMAGENET_STD]);
      assert.deepEqual(Array.from(got.subarray(j * 768, (j + 1) * 768)), Array.from(t.toTypedArray() as Float32Array), src.files![next + j]);
      t.dispose();
    }
    next += batch.count;
    batch.images.dispose();
  }
  assert.equal(next, 5);
  // Grayscale reading of the folder; a single image file is a one-item source.
  for await (const batch of normalisedBatches(et.openDataset(dir, { size: 8, channels: 1 }), 8)) {
    assert.deepEqual(batch.images.shape, [5, 1, 8, 8]);
    batch.images.dispose();
  }
  const one = et.openDataset(path.join(dir, 'c.jpg'), { size: 16 });
  assert.equal(one.kind, 'files');
  assert.equal(one.count, 1);
  // Stopping early leaks nothing.
  for await (const batch of new et.DataLoader(src, { mode: 'eval', batchSize: 1 }).batches()) {
    batch.images.dispose();
    break;
  }
  assert.equal(et.memory().liveTensors, before);
  fs.rmSync(dir, { recursive: true });
});

test('eval mode: a broken file stops the pass naming the file, or is reported and left out; bad paths are explained', async () => {
  const dir = tmpDir();
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toFile(path.join(dir, 'a.png'));
  fs.writeFileSync(path.join(dir, 'b.jpg'), 'not a jpeg');
  const bad = path.join(dir, 'b.jpg');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#204060' } }).png().toFile(path.join(dir, 'c.png'));
  const data = et.openDataset(dir, { size: 8 });
  await assert.rejects(async () => {
    for await (const batch of new et.DataLoader(data, { mode: 'eval', batchSize: 1 }).batches()) batch.images.dispose();
  }, (e: Error) => e.message.startsWith(`Cannot read image ${bad}: Cannot decode image ${bad}: `));
  const skipped: string[] = [];
  const seen: number[][] = [];
  const lenient = new et.DataLoader(data, { mode: 'eval', batchSize: 2, strict: false, onSkip: (name) => skipped.push(name) });
  for await (const batch of lenient.batches()) {
    seen.push(batch.indices);
    assert.deepEqual(batch.images.shape, [batch.indices.length, 3, 8, 8]);
    const px = batch.images.toTypedArray<'uint8'>();
    assert.equal(px[0], batch.indices[0] === 0 ? 128 : 0x20, 'the gap of the skipped file is closed');
    batch.images.dispose();
  }
  assert.deepEqual(seen, [[0], [2]], 'b.jpg (item 1) is left out of its batch');
  assert.deepEqual(skipped, [bad]);
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  assert.throws(() => et.openDataset(empty, { size: 8 }), /Expected image files .* under .*empty but found none/);
  assert.throws(() => et.openDataset(path.join(dir, 'nope'), { size: 8 }), /Expected an image folder, image file or IDX file but .*nope cannot be read/);
  const text = path.join(dir, 'labels.txt');
  fs.writeFileSync(text, 'cat\ndog\n');
  assert.throws(() => et.openDataset(text, { size: 8 }), /labels\.txt: Expected IDX magic bytes/);
  assert.throws(() => et.openDataset(dir, { size: 0 }), /Expected a positive integer for the dataset image size but received number 0/);
  fs.rmSync(dir, { recursive: true });
});
