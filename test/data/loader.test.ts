// The training data loader: seeded order per epoch, drop-last, resumption at a
// batch, labels, and files that fail to decode (skipped and reported, or
// fatal under strict).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as et from '../../lib';
import { openDataset, DataLoader, type Batch } from '../../lib/data';
import { tmpDir } from '../helpers/oracle';

const BUNDLED = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');

async function collect(it: AsyncGenerator<Batch>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const b of it) {
    out.push(b.indices);
    b.images.dispose();
    b.labels?.dispose();
  }
  return out;
}

test('same seed and epoch give the same batches; epochs differ; drop-last; resume at a batch', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 100 });
  assert.equal(data.count, 100);
  assert.ok(data.labels !== null, 'labels found beside the images');
  const a = new DataLoader(data, { batchSize: 16, seed: 3 });
  const b = new DataLoader(data, { batchSize: 16, seed: 3, prefetch: 4, concurrency: 1 });
  assert.equal(a.batchesPerEpoch(), 6);
  const e0 = await collect(a.epoch(0));
  assert.deepEqual(await collect(b.epoch(0)), e0);
  assert.equal(e0.length, 6);
  assert.equal(new Set(e0.flat()).size, 96, 'no item twice in an epoch');
  assert.notDeepEqual(await collect(a.epoch(1)), e0);
  assert.notDeepEqual(await collect(new DataLoader(data, { batchSize: 16, seed: 4 }).epoch(0)), e0);
  assert.deepEqual(await collect(a.epoch(0, 4)), e0.slice(4), 'resuming at batch 4 gives the rest of the same epoch');
  const keepLast = new DataLoader(data, { batchSize: 16, seed: 3, dropLast: false });
  assert.equal((await collect(keepLast.epoch(0))).at(-1)!.length, 4);
});

test('batches carry the pixels and labels of their items, as uint8 [B, 1, 28, 28] and int64 [B]', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 40 });
  const images = et.loadIdxImages(BUNDLED).images;
  const labels = et.loadIdxLabels(BUNDLED.replace('images-idx3', 'labels-idx1'));
  for await (const b of new DataLoader(data, { batchSize: 8, seed: 1 }).epoch(0)) {
    assert.deepEqual(b.images.shape, [8, 1, 28, 28]);
    assert.equal(b.images.dtype, 'uint8');
    const px = b.images.toTypedArray<'uint8'>();
    b.indices.forEach((idx, j) => assert.deepEqual(px.subarray(j * 784, (j + 1) * 784), images.subarray(idx * 784, (idx + 1) * 784)));
    assert.deepEqual(Array.from(b.labels!.toTypedArray<'int64'>(), Number), b.indices.map((i) => labels[i]));
    b.images.dispose();
    b.labels!.dispose();
  }
});

test('a file that fails to decode is reported and replaced, or stops the epoch under strict', async () => {
  const dir = tmpDir();
  try {
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, cls));
      for (let i = 0; i < 5; i++) {
        await sharp({ create: { width: 20, height: 16, channels: 3, background: { r: 40 * i, g: cls === 'a' ? 0 : 200, b: 9 } } }).png().toFile(path.join(dir, cls, `${i}.png`));
      }
    }
    fs.writeFileSync(path.join(dir, 'b', '3.png'), Buffer.from('not a png at all'));
    const data = openDataset(dir, { size: 16 });
    assert.equal(data.count, 10);
    assert.deepEqual(data.classes, ['a', 'b']);
    const skipped: string[] = [];
    const loader = new DataLoader(data, { batchSize: 3, seed: 0, onSkip: (name) => skipped.push(name) });
    const seen = (await collect(loader.epoch(0))).flat();
    assert.equal(seen.length, 9, 'three full batches');
    assert.ok(!seen.includes(8), 'the broken file (index 8) never appears');
    assert.deepEqual(skipped, [path.join(dir, 'b', '3.png')]);
    const strict = new DataLoader(data, { batchSize: 10, seed: 0, strict: true });
    await assert.rejects(collect(strict.epoch(0)), /Cannot read training image .*b[/\\]3\.png/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader errors: fewer images than a batch, bad sizes', () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 10 });
  assert.throws(() => new DataLoader(data, { batchSize: 16 }), /has 10 images, fewer than one batch of 16/);
  assert.throws(() => new DataLoader(data, { batchSize: 0 }), /positive integer for "batchSize"/);
  assert.throws(() => openDataset('/nonexistent/images', { size: 28 }), /Cannot read the dataset/);
});
