// Packs (`extrema pack`, lib/data/shards.ts): the bytes on disk read back by
// numpy in Python as the dataset they came from; the pack read as a dataset
// and through the loader equals its source; corrupt packs are refused by name.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { openDataset, packDataset, readPackIndex, verifyPack, DataLoader, disposeBatch, type ImageDataset } from '../../lib/data';
import { runPython, tmpDir } from '../helpers/oracle';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const IDX = path.join(ROOT, 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');
const LIMIT = 300;

async function packIdx(dir: string, shardBytes = 100 * 28 * 28 + 50): Promise<void> {
  await packDataset(openDataset(IDX, { size: 28, limit: LIMIT }), dir, { shardBytes });
}

test('a pack of the bundled IDX file is the IDX file: numpy reads the shards and labels as the same images and labels', async () => {
  const dir = tmpDir();
  await packIdx(dir);
  const index = readPackIndex(dir);
  assert.deepEqual(index.shards.map((s) => s.items), [100, 100, 100], 'whole items per shard, rounded down');
  assert.equal(index.count, LIMIT);
  // Independent reader: gzip + numpy on the original IDX file, raw numpy on the pack.
  const out = runPython(`
import gzip, json, sys, numpy as np
d, idx, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = gzip.open(idx).read()
images = np.frombuffer(raw, np.uint8, offset=16)[: n * 784].reshape(n, 28, 28, 1)
labels = np.frombuffer(gzip.open(idx.replace("images-idx3", "labels-idx1")).read(), np.uint8, offset=8)[:n]
ix = json.load(open(d + "/index.json"))
packed = np.concatenate([np.fromfile(d + "/" + s["file"], np.uint8) for s in ix["shards"]]).reshape(-1, ix["size"], ix["size"], ix["channels"])
plabels = np.fromfile(d + "/labels.i32", "<i4")
print(json.dumps({"images": bool((packed == images).all()), "labels": bool((plabels == labels).all()), "shape": list(packed.shape)}))
`, [dir, IDX, String(LIMIT)]);
  assert.deepEqual(JSON.parse(out.trim()), { images: true, labels: true, shape: [LIMIT, 28, 28, 1] });
  assert.deepEqual(verifyPack(dir), []);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the loader reads a pack exactly as it reads the source: same batches, same labels, in train and eval mode', async () => {
  const dir = tmpDir();
  await packIdx(dir);
  const fromIdx = openDataset(IDX, { size: 28, limit: LIMIT });
  const fromPack = openDataset(dir, { size: 28 });
  assert.equal(fromPack.kind, 'pack');
  assert.match(fromPack.describe, /pack .*: 300 images, 28 x 28, 1 channel, labelled/);
  for (const mode of ['train', 'eval'] as const) {
    const batches = async (ds: typeof fromIdx) => {
      const loader = new DataLoader(ds, { batchSize: 64, seed: 3, mode });
      const seen: number[][] = [];
      const stream = mode === 'train' ? (async function* () { for await (const s of loader.steps(0)) yield* s.batches; })() : loader.batches();
      for await (const b of stream) {
        seen.push([...(b.images.toTypedArray() as Uint8Array).slice(0, 2000), ...(b.labels!.toTypedArray() as Int32Array | BigInt64Array)].map(Number));
        disposeBatch(b);
      }
      return seen;
    };
    assert.deepEqual(await batches(fromPack), await batches(fromIdx), `${mode} mode`);
  }
  // another size or 3 channels: converted on read
  const wide = openDataset(dir, { size: 56, channels: 3 });
  assert.equal((await wide.read(7)).length, 56 * 56 * 3);
  assert.equal(openDataset({ kind: 'pack', dir }, { size: 28, limit: 50 }).count, 50, 'the explicit form and limit');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The dataset without its batch read: the loader falls back to one read(i) per item. */
const itemByItem = (ds: ImageDataset): ImageDataset => ({ ...ds, readInto: undefined });

/** Every batch of a pass: indices, then pixels, then labels. */
async function passOf(ds: ImageDataset, options: { mode: 'train' | 'eval'; batchSize: number; seed?: number; epoch?: number }): Promise<Array<{ indices: number[]; images: Uint8Array; labels: number[] }>> {
  const loader = new DataLoader(ds, { ...options, prefetch: 3 });
  const stream = options.mode === 'train' ? (async function* () { for await (const s of loader.steps(options.epoch ?? 0)) yield* s.batches; })() : loader.batches();
  const out = [];
  for await (const b of stream) {
    out.push({ indices: b.indices, images: b.images.toTypedArray() as Uint8Array, labels: Array.from(b.labels!.toTypedArray() as BigInt64Array, Number) });
    disposeBatch(b);
  }
  return out;
}

test('the batch read (readInto) gives the loader exactly the batches of item-by-item reads: shuffled epochs and eval passes over many shards', async () => {
  const dir = tmpDir();
  await packIdx(dir, 7 * 28 * 28); // 43 shards of 7 items: batches span shards, runs of neighbours cross shard ends
  const pack = openDataset(dir, { size: 28 });
  assert.equal(readPackIndex(dir).shards.length, 43);
  assert.equal(typeof pack.readInto, 'function');
  // the loader falls back to item-by-item reads when readInto rejects: make sure it never did here
  const batchReads = { calls: 0, failures: 0 };
  const counted: ImageDataset = { ...pack, readInto: (ix, into) => (batchReads.calls++, pack.readInto!(ix, into).catch((e: unknown) => { batchReads.failures++; throw e; })) };
  for (const epoch of [0, 1]) {
    const fast = await passOf(counted, { mode: 'train', batchSize: 64, seed: 5, epoch });
    assert.equal(fast.length, 4);
    assert.deepEqual(fast, await passOf(itemByItem(pack), { mode: 'train', batchSize: 64, seed: 5, epoch }), `train epoch ${epoch}`);
  }
  const evalFast = await passOf(counted, { mode: 'eval', batchSize: 128 });
  assert.deepEqual(batchReads, { calls: 11, failures: 0 });
  assert.deepEqual(evalFast.map((b) => b.indices.length), [128, 128, 44]);
  assert.deepEqual(evalFast, await passOf(itemByItem(pack), { mode: 'eval', batchSize: 128 }), 'eval: whole runs of neighbours, the last batch short');
  // Direct: any order, repeats, items converted on read (another size, 3 channels).
  for (const ds of [pack, openDataset(dir, { size: 20, channels: 3 })]) {
    const item = ds.size * ds.size * ds.channels;
    const indices = [299, 0, 1, 2, 6, 7, 8, 150, 150, 13, 12, 11];
    const into = new Uint8Array(indices.length * item);
    await ds.readInto!(indices, into);
    for (const [k, i] of indices.entries()) assert.deepEqual(into.subarray(k * item, (k + 1) * item), await ds.read(i), `item ${i} in slot ${k} at size ${ds.size}`);
    await assert.rejects(ds.readInto!([1, 2], new Uint8Array(item)), /Expected 2 x \d+ bytes to read 2 items into but received \d+/);
    await assert.rejects(ds.readInto!([1, 300], new Uint8Array(2 * item)), /Expected an item index in \[0, 300\)/);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a shard cut short after the pack was opened: the batch read names the shard, the loader names the item and skips or stops as configured', async () => {
  const dir = tmpDir();
  await packIdx(dir); // 3 shards of 100 items
  const pack = openDataset(dir, { size: 28 });
  fs.truncateSync(path.join(dir, 'shard-00002.u8'), 95 * 784 + 100); // items 295..299 gone, 295 partly
  await assert.rejects(pack.readInto!([3, 294, 295, 296], new Uint8Array(4 * 784)), /Pack shard shard-00002\.u8 ended early at item .*#295 \(read 100 of 784 bytes\)/);
  await assert.rejects(pack.read(297), /Pack shard shard-00002\.u8 ended early at item .*#297 \(read 0 of 784 bytes\)/);
  await assert.rejects(passOf(pack, { mode: 'eval', batchSize: 64 }), /Cannot read image .*#29[5-9]: Pack shard shard-00002\.u8 ended early/);
  const skipped: string[] = [];
  const loader = new DataLoader(pack, { batchSize: 48, seed: 1, onSkip: (name) => skipped.push(name) });
  const seen: number[] = [];
  for await (const s of loader.steps(0)) for await (const b of s.batches) {
    seen.push(...b.indices);
    disposeBatch(b);
  }
  assert.equal(seen.length, 6 * 48, 'every batch filled with readable items (12 spares)');
  assert.ok(seen.every((i) => i < 295), 'no item of the lost tail read');
  assert.ok(skipped.length > 0 && skipped.every((n) => Number(n.split('#')[1]) >= 295), 'only lost items reported');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an image folder packs with its classes; a broken image stops the pack by name, or is left out and reported with skip', async () => {
  const src = tmpDir();
  const colours = ['#ff0000', '#00ff00', '#0000ff'];
  for (const [c, name] of ['cat', 'dog'].entries()) {
    fs.mkdirSync(path.join(src, name));
    for (let k = 0; k < 3; k++) {
      await sharp({ create: { width: 40 + 8 * k, height: 30, channels: 3, background: colours[(c + k) % 3]! } }).jpeg().toFile(path.join(src, name, `${k}.jpg`));
    }
  }
  fs.writeFileSync(path.join(src, 'dog', 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
  const strictOut = tmpDir();
  // two images a shard: three shards are written before the broken image stops the pack
  await assert.rejects(packDataset(openDataset(src, { size: 16 }), strictOut, { shardBytes: 2 * 16 * 16 * 3 }), /Stopped packing at item 6 of 7 \(.*dog\/broken\.jpg\): [\s\S]*--skip-bad/);
  assert.deepEqual(fs.readdirSync(strictOut), [], 'a pack that stopped leaves nothing behind');
  const out = tmpDir();
  const skipped: string[] = [];
  const index = await packDataset(openDataset(src, { size: 16 }), out, { strict: false, onSkip: (name) => skipped.push(name) });
  assert.deepEqual(skipped.map((f) => path.relative(src, f)), [path.join('dog', 'broken.jpg')]);
  assert.equal(index.count, 6);
  assert.deepEqual(index.classes, ['cat', 'dog']);
  const packed = openDataset(out, { size: 16 });
  const source = openDataset(src, { size: 16 });
  assert.deepEqual(Array.from(packed.labels!), [0, 0, 0, 1, 1, 1]);
  // the broken file sorts last ("broken" after "2"), so the others keep their indices
  for (let i = 0; i < 6; i++) assert.deepEqual(await packed.read(i), await source.read(i), `item ${i}`);
  await assert.rejects(packDataset(openDataset(src, { size: 16 }), out, { strict: false }), /already holds index\.json/);
  for (const d of [src, strictOut, out]) fs.rmSync(d, { recursive: true, force: true });
});

test('corrupt packs are refused with the file and what is wrong, before reading pixels', async () => {
  const dir = tmpDir();
  await packIdx(dir);
  const indexFile = path.join(dir, 'index.json');
  const good = fs.readFileSync(indexFile, 'utf8');
  const withIndex = (edit: (ix: Record<string, unknown>) => void) => {
    const ix = JSON.parse(good) as Record<string, unknown>;
    edit(ix);
    fs.writeFileSync(indexFile, JSON.stringify(ix));
  };
  // A tiny index claiming a huge pack is refused by size checks, not by allocating it.
  withIndex((ix) => { ix.count = 2 ** 40; });
  assert.throws(() => openDataset(dir, { size: 28 }), /the shards hold 300 items but count is 1099511627776/);
  withIndex((ix) => { (ix.shards as Array<Record<string, unknown>>)[1]!.bytes = 1e15; });
  assert.throws(() => readPackIndex(dir), /shard shard-00001\.u8: 100 items of 784 bytes do not make 1000000000000000 bytes/);
  withIndex((ix) => { ix.format = 'zip'; });
  assert.throws(() => readPackIndex(dir), /Corrupt pack index .*index\.json: expected format "extrema-pack"/);
  withIndex((ix) => { ix.version = 9; });
  assert.throws(() => readPackIndex(dir), /version 9 is not supported/);
  fs.writeFileSync(indexFile, good.slice(0, 40));
  assert.throws(() => readPackIndex(dir), /cannot be read as JSON/);
  fs.writeFileSync(indexFile, good);
  // truncated shard, missing labels, flipped byte
  const shard = path.join(dir, 'shard-00002.u8');
  const bytes = fs.readFileSync(shard);
  fs.writeFileSync(shard, bytes.subarray(0, 1000));
  assert.throws(() => openDataset(dir, { size: 28 }), /shard-00002\.u8 has 1000 bytes but the index says 78400 \(truncated or replaced\)/);
  fs.writeFileSync(shard, bytes);
  fs.renameSync(path.join(dir, 'labels.i32'), path.join(dir, 'labels.bak'));
  assert.throws(() => openDataset(dir, { size: 28 }), /labels\.i32 should hold 300 int32 labels \(1200 bytes\) but is missing/);
  fs.renameSync(path.join(dir, 'labels.bak'), path.join(dir, 'labels.i32'));
  const flipped = Buffer.from(bytes);
  flipped[500] ^= 0x40;
  fs.writeFileSync(shard, flipped);
  assert.deepEqual(verifyPack(dir), ['shard-00002.u8'], 'the CRC finds a changed byte');
  await assert.rejects(openDataset(dir, { size: 28, channels: 1 }).read(300), /Expected an item index in \[0, 300\)/);
  fs.rmSync(dir, { recursive: true, force: true });
});
