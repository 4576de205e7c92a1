// `extrema predict` end to end: probabilities equal the softmax of timm's
// logits for the same checkpoint and pixels, classes best first, names from
// the checkpoint (or Fashion-MNIST's for IDX), for an IDX file through the
// command line and an image folder through the library.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import * as et from '../../lib';
import { VitClassifier, vitConfig } from '../../lib/nn';
import { saveClassifier, predictToFile, FASHION_MNIST_CLASSES, type Prediction } from '../../lib/eval';
import { runOracle, tmpDir } from '../helpers/oracle';

const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');

function classifier(inChans: number, size: number, numClasses: number): VitClassifier {
  const encoder = vitConfig({ imgSize: size, patchSize: 4, inChans, embedDim: 32, depth: 2, numHeads: 2, pooling: 'mean', classAttentionLayers: 0 });
  const model = new VitClassifier({ encoder, numClasses }, { seed: 4 });
  // A head far from its 0.001-scaled start, so the probabilities are spread out.
  et.noGrad(() => {
    const g = et.Generator.create(8);
    for (const p of model.parameters()) et.scope(() => p.add_(et.randn(p.shape, { generator: g }).mul(0.3)));
  });
  return model;
}

function idx(file: string, magic: number, dims: number[], bytes: Uint8Array): void {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat([header, Buffer.from(bytes)])));
}

/** Each prediction against the oracle's probabilities: the k best classes in order, their probabilities, names. */
function checkPredictions(preds: Prediction[], probs: et.Tensor, k: number, names: readonly string[]): void {
  const n = probs.shape[0]!;
  const c = probs.shape[1]!;
  const p = probs.toTypedArray<'float32'>();
  assert.equal(preds.length, n);
  preds.forEach((pred, i) => {
    assert.equal(pred.index, i);
    const row = Array.from(p.subarray(i * c, (i + 1) * c));
    const order = row.map((v, j) => [v, j] as const).sort((a, b) => b[0] - a[0]).slice(0, k);
    assert.deepEqual(pred.top.map((t) => t.class), order.map(([, j]) => j), `image ${i}: classes best first`);
    pred.top.forEach((t, j) => {
      assert.ok(Math.abs(t.probability - order[j]![0]) <= 1e-5, `image ${i} class ${t.class}: probability ${t.probability} vs ${order[j]![0]}`);
      assert.equal(t.name, names[t.class]);
    });
  });
}

test('extrema predict on an IDX file: top-3 probabilities equal the softmax of timm logits, Fashion-MNIST names', async () => {
  const dir = tmpDir();
  try {
    const model = classifier(1, 28, 10);
    const ckpt = path.join(dir, 'ft.safetensors');
    saveClassifier(ckpt, model, { classes: null });
    const n = 5;
    const pixels = Uint8Array.from({ length: n * 28 * 28 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256);
    idx(path.join(dir, 'x-images-idx3-ubyte.gz'), 0x803, [n, 28, 28], pixels);
    idx(path.join(dir, 'x-labels-idx1-ubyte.gz'), 0x801, [n], Uint8Array.from([3, 1, 4, 1, 5]));
    const out = path.join(dir, 'preds', 'p.jsonl');
    const r = spawnSync(process.execPath, [MAIN, 'predict', '--checkpoint', ckpt, '--images', path.join(dir, 'x-images-idx3-ubyte.gz'), '--out', out, '--top-k', '3', '--batch-size', '2', '--quiet'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /wrote 5 predictions to .*p\.jsonl in [\d.]+ s \(top-1 accuracy [\d.]+% on the labelled images\)/);
    const preds = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Prediction);
    assert.deepEqual(Object.keys(preds[0]!), ['index', 'label', 'top'], 'IDX items have an index and no file');
    assert.deepEqual(preds.map((p) => p.label), [3, 1, 4, 1, 5]);
    const px = et.fromTypedArray(pixels, [n, 1, 28, 28]);
    const ref = runOracle('classifier_oracle.py', { task: 'timm', checkpoint: ckpt, model: { img_size: 28, patch_size: 4, in_chans: 1, num_classes: 10, embed_dim: 32, depth: 2, num_heads: 2 }, mean: [0.5], std: [0.5] }, { pixels: px });
    checkPredictions(preds, ref.get('probs')!, 3, FASHION_MNIST_CLASSES);
    assert.ok(preds.some((p) => p.top[0]!.probability < 0.9), 'probabilities are spread out, so the comparison means something');

    const bad = spawnSync(process.execPath, [MAIN, 'predict', '--checkpoint', ckpt, '--images', path.join(dir, 'x-images-idx3-ubyte.gz'), '--out', out, '--top-k', '0'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--top-k/);
    for (const t of [px, ...ref.values()]) t.dispose();
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('predict on an image folder: the checkpoint\'s class names, files and labels, top-k capped at the class count', async () => {
  const dir = tmpDir();
  try {
    const model = classifier(3, 16, 3);
    const ckpt = path.join(dir, 'ft.safetensors');
    // The normalisation the fine-tuning run stored with the checkpoint is the one predict applies.
    saveClassifier(ckpt, model, { classes: ['cat', 'dog', 'fish'], metadata: { normalization: JSON.stringify({ mean: [0.4, 0.5, 0.6], std: [0.2, 0.3, 0.25] }) } });
    const root = path.join(dir, 'images');
    const files = ['cat/a.png', 'cat/b.png', 'dog/c.png'];
    const raw = files.map((_, k) => Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * (13 + 7 * k) + k * 50) % 256));
    for (const [k, f] of files.entries()) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      await sharp(Buffer.from(raw[k]!), { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, f));
    }
    const out = path.join(dir, 'p.jsonl');
    const live = et.memory().liveTensors;
    const r = await predictToFile({ checkpoint: ckpt, images: root, out, batchSize: 2 });
    assert.equal(et.memory().liveTensors, live, 'no tensor outlives the call');
    assert.deepEqual([r.count, r.out], [3, out]);
    const preds = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Prediction);
    assert.deepEqual(preds.map((p) => [p.file, p.label]), files.map((f, k) => [path.join(root, f), k < 2 ? 0 : 1]));
    const hwc = et.fromTypedArray(Uint8Array.from(raw.flatMap((a) => [...a])), [3, 16, 16, 3]);
    const px = et.scope(() => hwc.permute(0, 3, 1, 2).contiguous());
    const ref = runOracle('classifier_oracle.py', {
      task: 'timm', checkpoint: ckpt, model: { img_size: 16, patch_size: 4, in_chans: 3, num_classes: 3, embed_dim: 32, depth: 2, num_heads: 2 },
      mean: [0.4, 0.5, 0.6], std: [0.2, 0.3, 0.25],
    }, { pixels: px });
    checkPredictions(preds, ref.get('probs')!, 3, ['cat', 'dog', 'fish']);
    const top1 = preds.map((p) => p.top[0]!.class);
    assert.equal(r.accuracy, top1.filter((c, i) => c === preds[i]!.label).length / 3);

    await assert.rejects(predictToFile({ checkpoint: path.join(dir, 'missing.safetensors'), images: root, out }), /Cannot read safetensors file/);
    for (const t of [hwc, px, ...ref.values()]) t.dispose();
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
