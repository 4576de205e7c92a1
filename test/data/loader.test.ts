// The data loader in train mode: seeded order per epoch, drop-last,
// micro-batches grouped into steps, resumption at a step, labels, and files
// that fail to decode (skipped and reported, or fatal under strict).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as et from '../../lib';
import { openDataset, DataLoader, type Batch, type TrainStep } from '../../lib/data';
import { tmpDir } from '../helpers/oracle';

const BUNDLED = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');

async function collectBatches(it: AsyncGenerator<Batch>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const b of it) {
    out.push(b.indices);
    b.images.dispose();
    b.labels?.dispose();
  }
  return out;
}

/** The items of every micro-batch of the steps, in order. */
async function collect(steps: AsyncGenerator<TrainStep>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const step of steps) out.push(...(await collectBatches(step.batches)));
  return out;
}

test('same seed and epoch give the same batches; epochs differ; drop-last; resume at a step', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 100 });
  assert.equal(data.count, 100);
  assert.ok(data.labels !== null, 'labels found beside the images');
  const a = new DataLoader(data, { batchSize: 16, seed: 3 });
  const b = new DataLoader(data, { batchSize: 16, seed: 3, prefetch: 4, concurrency: 1 });
  assert.equal(a.batchesPerEpoch(), 6);
  const e0 = await collect(a.steps(0));
  assert.deepEqual(await collect(b.steps(0)), e0);
  assert.equal(e0.length, 6);
  assert.equal(new Set(e0.flat()).size, 96, 'no item twice in an epoch');
  assert.notDeepEqual(await collect(a.steps(1)), e0);
  assert.notDeepEqual(await collect(new DataLoader(data, { batchSize: 16, seed: 4 }).steps(0)), e0);
  assert.deepEqual(await collect(a.steps(0, 4)), e0.slice(4), 'resuming at step 4 gives the rest of the same epoch');
  const inOrder = new DataLoader(data, { mode: 'eval', batchSize: 16 });
  const all = await collectBatches(inOrder.batches());
  assert.equal(all.at(-1)!.length, 4, 'eval mode keeps the last, short batch');
  assert.deepEqual(all.flat(), Array.from({ length: 100 }, (_, i) => i), 'eval mode reads every item in order');
});

test('accumulation: steps group micro-batches in order; resuming at step k reads from micro-batch k x accumulate; unread ones are freed', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 100 });
  const plain = await collectBatches((async function* () {
    for await (const s of new DataLoader(data, { batchSize: 8, seed: 5 }).steps(0)) yield* s.batches;
  })());
  assert.equal(plain.length, 12);
  const grouped = new DataLoader(data, { batchSize: 8, seed: 5, accumulate: 3 });
  assert.equal(grouped.batchesPerEpoch(), 12);
  assert.equal(grouped.stepsPerEpoch(), 4);
  const steps: number[][][] = [];
  for await (const s of grouped.steps(0)) {
    assert.equal(s.step, steps.length);
    steps.push(await collectBatches(s.batches));
  }
  assert.deepEqual(steps.map((s) => s.length), [3, 3, 3, 3]);
  assert.deepEqual(steps.flat(), plain, 'the same micro-batches as without accumulation, grouped by three');
  assert.deepEqual(await collect(grouped.steps(0, 2)), plain.slice(6), 'step 2 starts at micro-batch 6');
  const before = et.memory().liveTensors;
  const firsts: number[][] = [];
  for await (const s of grouped.steps(1)) {
    for await (const b of s.batches) {
      firsts.push(b.indices);
      b.images.dispose();
      b.labels?.dispose();
      break; // the other two micro-batches of the step are left unread
    }
  }
  assert.equal(firsts.length, 4);
  assert.equal(et.memory().liveTensors, before, 'micro-batches the loop did not read were disposed');
  assert.throws(() => new DataLoader(data, { batchSize: 40, accumulate: 3 }), /has 100 images, fewer than one step of 120 \(batch 40 x 3 accumulated/);
  await assert.rejects(collect(grouped.steps(0, 5)), /Expected a step in \[0, 4\] to start epoch 0 at but received 5/);
});

test('batches carry the pixels and labels of their items, as uint8 [B, 1, 28, 28] and int64 [B]', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 40 });
  const images = et.loadIdxImages(BUNDLED).images;
  const labels = et.loadIdxLabels(BUNDLED.replace('images-idx3', 'labels-idx1'));
  for await (const b of new DataLoader(data, { mode: 'eval', batchSize: 8 }).batches()) {
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
    const seen = (await collect(loader.steps(0))).flat();
    assert.equal(seen.length, 9, 'three full batches');
    assert.ok(!seen.includes(8), 'the broken file (index 8) never appears');
    assert.deepEqual(skipped, [path.join(dir, 'b', '3.png')]);
    const strict = new DataLoader(data, { batchSize: 10, seed: 0, strict: true });
    await assert.rejects(collect(strict.steps(0)), /Cannot read training image .*b[/\\]3\.png/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loader errors: fewer images than a batch, bad sizes', () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 10 });
  assert.throws(() => new DataLoader(data, { batchSize: 16 }), /has 10 images, fewer than one step of 16/);
  assert.throws(() => new DataLoader(data, { batchSize: 0 }), /Expected a positive integer for "batchSize" of the data loader but received number 0/);
  assert.throws(() => new DataLoader(data, { batchSize: 2, mode: 'test' as 'eval' }), /Expected one of train, eval for "mode" of the data loader/);
  assert.throws(() => new DataLoader(data, { batchSize: 2, start: 3 }), /start and end select items of an eval pass/);
  assert.throws(() => new DataLoader(data, { batchSize: 2, mode: 'eval', end: 11 }), /Expected 0 <= start <= end <= 10 for the data loader but received start 0, end 11/);
  assert.throws(() => openDataset('/nonexistent/images', { size: 28 }), /Expected an image folder, image file or IDX file but \/nonexistent\/images cannot be read/);
});

test('sharded (DistributedSampler semantics): ranks read equal, disjoint strided slices; together a step is the single-process step of size x batch', async () => {
  const data = openDataset(BUNDLED, { size: 28, limit: 103 }); // 103 = 3 x 34 + 1: one item dropped
  const size = 3;
  const whole = new DataLoader(data, { batchSize: 8 * size, seed: 5 });
  const ranks = Array.from({ length: size }, (_, rank) => new DataLoader(data, { batchSize: 8, seed: 5, shard: { rank, size } }));
  const full = whole.order(2);
  for (const [rank, loader] of ranks.entries()) {
    const order = loader.order(2);
    assert.equal(order.length, 34);
    assert.deepEqual(Array.from(order), Array.from({ length: 34 }, (_, i) => full[rank + i * size]!));
    assert.equal(loader.stepsPerEpoch(), 4);
  }
  const perRank = await Promise.all(ranks.map((l) => collect(l.steps(2))));
  const single = await collect(whole.steps(2));
  assert.equal(single.length, 4);
  for (let s = 0; s < 4; s++) {
    const union = perRank.flatMap((batches) => batches[s]!).sort((a, b) => a - b);
    assert.deepEqual(union, [...single[s]!].sort((a, b) => a - b), `step ${s}`);
  }
  assert.equal(new Set(perRank.flat(2)).size, perRank.flat(2).length, 'no item read by two ranks');
  assert.throws(() => new DataLoader(data, { batchSize: 8, shard: { rank: 3, size } }), /"shard\.rank" of the data loader/);
  assert.throws(() => new DataLoader(data, { batchSize: 8, mode: 'eval', shard: { rank: 0, size } }), /an eval pass reads/);
  assert.throws(() => new DataLoader(data, { batchSize: 40, shard: { rank: 0, size } }), /on each of 3 ranks \(34 images each\)/);
});
