// Fine-tuning: N steps on fixed batches with random augmentation off give
// PyTorch's loss curve and final weights (an independent mean-pooled ViT with
// BEiT's layer-decay groups in torch.optim.AdamW, test/oracle/finetune_ref.py);
// a run stopped mid-epoch and resumed is bit-identical to an uninterrupted
// one; bad input gives one clear error each. Tiny models, a few dozen images.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as et from '../../lib';
import { finetune, CLASSIFIER_FILE } from '../../lib/train/finetune';
import { finetuneConfig, type FinetuneConfigInput } from '../../lib/train/finetune-config';
import { RunLog } from '../../lib/io/run-log';
import { DataLoader } from '../../lib/data/loader';
import { openDataset } from '../../lib/data/dataset';
import { classifierFrom } from '../../lib/eval/classifier-checkpoint';
import { ExtremaModel } from '../../lib/extrema/model';
import { saveCheckpoint } from '../../lib/extrema/checkpoint';
import { runOracle, tmpDir } from '../helpers/oracle';

const SIZE = 16;
const ENCODER = { imgSize: SIZE, patchSize: 4, inChans: 1 as const, embedDim: 32, depth: 2, numHeads: 2 };

function idx(code: number, dims: number[], body: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE((code << 8) | dims.length, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return gzipSync(Buffer.concat([header, Buffer.from(body)]));
}

/** n 16 x 16 images whose class (i mod classes) brightens one band of rows, plus noise; returns the images file. */
function writeSet(dir: string, name: string, n: number, classes: number, labelOf = (i: number) => i % classes): { file: string; pixels: Uint8Array; labels: number[] } {
  let s = n * 7919 + classes;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pixels = new Uint8Array(n * SIZE * SIZE);
  const labels = Array.from({ length: n }, (_, i) => labelOf(i));
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < SIZE * SIZE; p++) {
      const band = Math.floor(Math.floor(p / SIZE) / (SIZE / 4)) === labels[i]! % 4;
      pixels[i * SIZE * SIZE + p] = Math.min(255, Math.floor(rand() * 90 + (band ? 150 : 20)));
    }
  }
  const file = path.join(dir, `${name}-images-idx3-ubyte.gz`);
  fs.writeFileSync(file, idx(0x08, [n, SIZE, SIZE], pixels));
  fs.writeFileSync(path.join(dir, `${name}-labels-idx1-ubyte.gz`), idx(0x08, [n], Uint8Array.from(labels)));
  return { file, pixels, labels };
}

const AUG_OFF = { scale: [1, 1] as [number, number], flipP: 0, colorJitter: 0, randAugment: null, reprob: 0, mixup: 0, cutmix: 0, labelSmoothing: 0.1 };

function recipe(train: string, out: string, over: FinetuneConfigInput = {}): FinetuneConfigInput {
  return {
    preset: 'fmnist-demo', train, test: null, out, encoder: ENCODER, epochs: 2, warmupEpochs: 1, batchSize: 8,
    baseLr: 0.3, minLr: 1e-4, dropPath: 0, layerDecay: 0.65, weightDecay: 0.05, evalCropPct: 1, seed: 3, workers: 2, augment: AUG_OFF, ...over,
  };
}

const stepLosses = (out: string) => RunLog.read(path.join(out, 'log.jsonl')).filter((r) => r.kind === 'step').map((r) => r.loss as number);

test('fine-tuning with augmentation off gives PyTorch\'s loss curve and final weights', async () => {
  const dir = tmpDir();
  try {
    const { file, pixels, labels } = writeSet(dir, 'train', 32, 4);
    const cfg = recipe(file, path.join(dir, 'run'));
    const result = await finetune(cfg, {}, { resume: 'never' });
    assert.equal(result.iterations, 8);
    // The same initial weights as the run (its seed), and its batches: the loader's order per epoch.
    const init = classifierFrom('none', { numClasses: 4, encoder: ENCODER, dropPathRate: 0, seed: 3 });
    const loader = new DataLoader(openDataset(file, { size: SIZE }), { mode: 'train', batchSize: 8, seed: 3 });
    const item = SIZE * SIZE;
    const images = new Uint8Array(8 * 8 * item);
    const batchLabels = new BigInt64Array(8 * 8);
    for (let e = 0; e < 2; e++) {
      const order = loader.order(e);
      for (let k = 0; k < 32; k++) {
        const i = order[k]!;
        images.set(pixels.subarray(i * item, (i + 1) * item), (e * 32 + k) * item);
        batchLabels[e * 32 + k] = BigInt(labels[i]!);
      }
    }
    const inputs = new Map(init.stateDict());
    inputs.set('images', et.fromTypedArray(images, [8, 8, 1, SIZE, SIZE]));
    inputs.set('labels', et.fromTypedArray(batchLabels, [8, 8]));
    const ref = runOracle('finetune_ref.py', {
      depth: 2, heads: 2, patch: 4, eps: 1e-6, num_classes: 4, base_lr: (0.3 * 8) / 256, min_lr: 1e-4, warmup_epochs: 1, epochs: 2,
      steps_per_epoch: 4, steps: 8, weight_decay: 0.05, layer_decay: 0.65, betas: [0.9, 0.999], smoothing: 0.1, mean: [0.5], std: [0.5]
    }, inputs);
    const want = Array.from(ref.get('losses')!.toTypedArray() as Float64Array);
    const got = stepLosses(cfg.out as string);
    assert.equal(got.length, 8);
    got.forEach((l, i) => assert.ok(Math.abs(l - want[i]!) < 5e-6, `step ${i + 1}: loss ${l} vs torch ${want[i]}`));
    // The head starts at 0.001 x its init (logits near 0, loss near ln 4); a curve that leaves ln 4 shows the updates reach the logits.
    assert.ok(Math.max(...want.map((l) => Math.abs(l - Math.log(4)))) > 0.01, `the oracle's loss curve moves (${want.join(', ')})`);
    const final = et.loadSafetensors(path.join(cfg.out as string, CLASSIFIER_FILE)).tensors;
    let moved = 0;
    for (const [k, t0] of init.stateDict()) {
      const mine = final.get(k)!;
      const theirs = ref.get(k)!;
      const diff = mine.sub(theirs).abs().max().item();
      assert.ok(diff < 5e-6, `${k}: max |ours - torch| = ${diff}`);
      moved = Math.max(moved, theirs.sub(t0).abs().max().item());
    }
    assert.ok(moved > 1e-2, `the weights moved by up to ${moved}`);
    init.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a run stopped mid-epoch and resumed gives the same log and weights, bit for bit (full augmentation, EMA)', async () => {
  const dir = tmpDir();
  try {
    const { file } = writeSet(dir, 'train', 32, 4);
    const testSet = writeSet(dir, 't10k', 12, 4);
    const over: FinetuneConfigInput = {
      test: testSet.file, dropPath: 0.1, ema: 0.9, labelFraction: 0.5,
      augment: { scale: [0.5, 1], randAugment: 'rand-m9-mstd0.5-inc1', reprob: 0.25, mixup: 0.8, cutmix: 1, labelSmoothing: 0.1 },
    };
    const full = path.join(dir, 'full');
    const split = path.join(dir, 'split');
    const a = await finetune(recipe(file, full, over), {}, { resume: 'never' });
    assert.equal(a.iterations, 4, '16 labelled images (half of each class), batch 8, 2 epochs');
    const stopped = await finetune(recipe(file, split, over), {}, { resume: 'never', stopAfterIterations: 1 });
    assert.equal(stopped.classifier, null);
    const messages: string[] = [];
    const b = await finetune(recipe(file, split, over), { onMessage: (m) => messages.push(m) }, { resume: 'auto' });
    assert.ok(messages.some((m) => /resumed from .* at epoch 0, step 1 \(iteration 1\)/.test(m)), messages.join('\n'));
    assert.deepEqual(RunLog.read(path.join(split, 'log.jsonl')).map(({ seconds: _s, ...r }) => r), RunLog.read(path.join(full, 'log.jsonl')).map(({ seconds: _s, ...r }) => r), 'identical logs (but for wall time)');
    assert.equal(b.top1, a.top1);
    const subset = JSON.parse(fs.readFileSync(path.join(split, 'label-subset.json'), 'utf8'));
    assert.deepEqual(subset.perClass, [4, 4, 4, 4]);
    for (const name of [CLASSIFIER_FILE, 'classifier-ema.safetensors']) {
      const wa = et.loadSafetensors(path.join(full, name)).tensors;
      const wb = et.loadSafetensors(path.join(split, name)).tensors;
      for (const [k, t] of wa) assert.deepEqual(Buffer.from(wb.get(k)!.toTypedArray().buffer), Buffer.from(t.toTypedArray().buffer), `${name} ${k} bit-identical`);
    }
    for (const f of ['config.json', 'log.jsonl', 'checkpoint.safetensors', 'loss.png', 'lr.png', 'accuracy.png']) assert.ok(fs.existsSync(path.join(split, f)), f);
    const epochs = RunLog.read(path.join(split, 'log.jsonl')).filter((r) => r.kind === 'epoch');
    assert.deepEqual(epochs.map((r) => typeof r.top1 === 'number' && typeof r.emaTop1 === 'number'), [true, true], 'top-1 of the model and its EMA every epoch');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives one clear error each', async () => {
  const dir = tmpDir();
  try {
    const { file } = writeSet(dir, 'train', 32, 4);
    const out = path.join(dir, 'run');
    await assert.rejects(finetune(recipe(file, out, { labelFraction: 0.05 }), {}, { resume: 'never' }),
      /--label-fraction 0.05 leaves class 0 without any image: it has 8 image\(s\)/);
    const unknown = writeSet(dir, 'unknown', 8, 4, (i) => (i === 5 ? 7 : i % 4));
    await assert.rejects(finetune(recipe(file, out, { test: unknown.file }), {}, { resume: 'never' }),
      /The test set .*unknown-images-idx3-ubyte.gz has label 7 \(item 5\) but the training set has classes 0..3 only/);
    // A pretraining checkpoint of a wider encoder than the recipe's.
    const wide = new ExtremaModel({ encoder: { ...ENCODER, embedDim: 48, numHeads: 2, classAttentionLayers: 1 }, projectorHiddenDim: 16, projectorDim: 8, predictorHiddenDim: 16, maskRatio: 0.5, numMasks: 1 }, { seed: 0 });
    const ckpt = path.join(dir, 'wide.safetensors');
    saveCheckpoint(ckpt, wide);
    wide.dispose();
    await assert.rejects(finetune(recipe(file, out, { from: ckpt }), {}, { resume: 'never' }), /Expected a checkpoint of the requested encoder \(embedDim 32\) but .*wide.safetensors holds an encoder with embedDim 48/);
    assert.throws(() => finetuneConfig(recipe(file, out, { encoder: { ...ENCODER, dropPathRate: 0.1 } as never })), /dropPathRate/);
    // Resuming a run folder whose checkpoint holds another architecture than the recipe builds.
    await finetune(recipe(file, out), {}, { resume: 'never', stopAfterIterations: 1 });
    await assert.rejects(finetune(recipe(file, out, { encoder: { ...ENCODER, embedDim: 48 } }), {}, { resume: 'auto' }),
      /Cannot resume from .*checkpoint.safetensors: it holds a different classifier than this run builds .*use --resume never or another --out/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the presets resolve to the recipes they name', () => {
  const b = finetuneConfig({ preset: 'vit-b-224' });
  assert.equal(b.batchSize * b.accumulate, 1024);
  assert.deepEqual([b.epochs, b.warmupEpochs, b.baseLr, b.minLr, b.layerDecay, b.weightDecay, b.dropPath], [100, 5, 5e-4, 1e-6, 0.65, 0.05, 0.2]);
  assert.deepEqual(b.augment, { scale: [0.08, 1], flipP: 0.5, colorJitter: 0.4, randAugment: 'rand-m9-mstd0.5-inc1', reprob: 0.25, mixup: 0.8, cutmix: 1, mixupProb: 1, switchProb: 0.5, labelSmoothing: 0.1 });
  const f = finetuneConfig({ preset: 'fmnist-cpu' });
  assert.equal(f.batchSize, 256);
  assert.deepEqual(f.encoder, { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 192, depth: 6, numHeads: 3 });
});

test('extrema finetune: flags override the preset, bad values are named, a tiny run prints its accuracy', async () => {
  const main = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
  const cli = (...args: string[]) => spawnSync(process.execPath, [main, 'finetune', ...args], { encoding: 'utf8', timeout: 120_000 });
  const printed = cli('--preset', 'vit-b-224', '--layer-decay', '0.75', '--rand-augment', 'null', '--print-config');
  assert.equal(printed.status, 0, printed.stderr);
  const cfg = JSON.parse(printed.stdout);
  assert.deepEqual([cfg.layerDecay, cfg.augment.randAugment, cfg.accumulate], [0.75, null, 4]);
  const bad = cli('--label-fraction', '1.5', '--print-config');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /Expected a number in \(0, 1\] for --label-fraction but received number 1.5/);
  const dir = tmpDir();
  try {
    const { file } = writeSet(dir, 'train', 32, 4);
    const t10k = writeSet(dir, 't10k', 12, 4);
    const out = path.join(dir, 'run');
    const r = cli('--train', file, '--test', t10k.file, '--out', out, '--img-size', '16', '--width', '32', '--depth', '1', '--heads', '2',
      '--epochs', '1', '--warmup-epochs', '0', '--batch-size', '16', '--eval-crop-pct', '1', '--workers', '2', '--quiet');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /test top-1: \d+\.\d\d%  top-5: 100\.00%/);
    assert.ok(fs.existsSync(path.join(out, CLASSIFIER_FILE)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
