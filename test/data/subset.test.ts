// Semi-supervised subsets: the same fraction of every class, drawn by seed,
// written to a JSON file and read back unchanged; a fraction that leaves a
// class without images is refused, naming the class.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labelFractionSubset, readSubset, subsetDataset } from '../../lib/data/subset';
import type { ImageDataset } from '../../lib/data/dataset';
import { tmpDir } from '../helpers/oracle';

/** A labelled dataset whose item i reads as the single byte i (no files needed). */
function fakeDataset(labels: number[], classes: string[] | null = null): ImageDataset {
  return {
    kind: 'folder', path: '/fake', count: labels.length, size: 1, channels: 1, labels: Int32Array.from(labels), classes, files: null,
    describe: 'fake', read: async (i) => Uint8Array.of(i), name: (i) => `fake#${i}`,
  };
}

// 3 classes of 40, 20 and 10 items.
const LABELS = [...Array.from({ length: 40 }, () => 0), ...Array.from({ length: 20 }, () => 1), ...Array.from({ length: 10 }, () => 2)];

test('the subset takes round(fraction x n_c) items of every class, by seed', () => {
  const data = fakeDataset(LABELS, ['cat', 'dog', 'eel']);
  const s = labelFractionSubset(data, { fraction: 0.1, seed: 4 });
  assert.deepEqual(s.perClass, [4, 2, 1]);
  assert.equal(s.indices.length, 7);
  const counts = [0, 0, 0];
  for (const i of s.indices) counts[LABELS[i]!]!++;
  assert.deepEqual(counts, [4, 2, 1], 'the indices hold exactly those per-class counts');
  assert.deepEqual([...s.indices].sort((a, b) => a - b), s.indices, 'sorted');
  assert.equal(new Set(s.indices).size, 7, 'no repeats');
  assert.deepEqual(labelFractionSubset(data, { fraction: 0.1, seed: 4 }).indices, s.indices, 'same seed, same subset');
  const others = [5, 6, 7].map((seed) => labelFractionSubset(data, { fraction: 0.1, seed }).indices.join());
  assert.ok(others.some((o) => o !== s.indices.join()), 'another seed draws another subset');
  assert.equal(labelFractionSubset(data, { fraction: 1, seed: 0 }).indices.length, 70, 'fraction 1 keeps everything');
});

test('the subset is written to its file and read back from it on resume', async () => {
  const dir = tmpDir();
  try {
    const file = path.join(dir, 'label-subset.json');
    const data = fakeDataset(LABELS);
    const s = labelFractionSubset(data, { fraction: 0.25, seed: 1, file });
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(saved.indices, s.indices);
    assert.equal(saved.fraction, 0.25);
    assert.equal(saved.count, 70);
    // A file edited by hand is what a resumed run uses: the file, not a new draw, decides.
    fs.writeFileSync(file, JSON.stringify({ ...saved, indices: [0, 1, 2] }));
    assert.deepEqual(labelFractionSubset(data, { fraction: 0.25, seed: 1, file }).indices, [0, 1, 2]);
    assert.throws(() => readSubset(file, 2), /Expected a list of item indices in \[0, 2\)/);
    const sub = subsetDataset(data, [3, 60, 65]);
    assert.equal(sub.count, 3);
    assert.deepEqual([...sub.labels!], [LABELS[3], LABELS[60], LABELS[65]]);
    assert.deepEqual([...(await sub.read(1))], [60], 'item 1 of the subset is item 60 of the dataset');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a fraction that leaves a class empty is one clear error naming the class', () => {
  const data = fakeDataset(LABELS, ['cat', 'dog', 'eel']);
  assert.throws(() => labelFractionSubset(data, { fraction: 0.03, seed: 0 }), /--label-fraction 0.03 leaves "eel" \(class 2\) without any image: it has 10 image\(s\)/);
  assert.throws(() => labelFractionSubset(data, { fraction: 0, seed: 0 }), /Expected a number in \(0, 1\] for --label-fraction but received number 0/);
  assert.throws(() => labelFractionSubset({ ...data, labels: null }, { fraction: 0.5, seed: 0 }), /has no labels/);
});

test("a subset of a pack keeps the pack's batch read, through the index mapping", async () => {
  const { openDataset, packDataset } = await import('../../lib/data');
  const idxFile = path.join(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');
  const dir = tmpDir();
  await packDataset(openDataset(idxFile, { size: 28, limit: 40 }), dir, { shardBytes: 7 * 28 * 28 });
  const sub = subsetDataset(openDataset(dir, { size: 28 }), [39, 3, 3, 17, 0]);
  assert.ok(sub.readInto !== undefined, 'readInto forwarded');
  const items = [4, 0, 2, 1];
  const into = new Uint8Array(items.length * 28 * 28);
  await sub.readInto!(items, into);
  for (const [k, i] of items.entries()) assert.deepEqual(into.subarray(k * 784, (k + 1) * 784), await sub.read(i), `item ${i}`);
  assert.throws(() => sub.readInto!([5], new Uint8Array(784)), /Expected an item index in \[0, 5\) but received 5/);
});
