// The example programs run end to end on a tiny budget: the pretraining
// loop writes a checkpoint that `finetune --from` can read, and the
// fine-tuning example trains from it on an image folder and prints the test
// accuracy.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { loadCheckpoint } from '../../lib/extrema';
import { tmpDir } from '../helpers/oracle';
import { freePort } from '../helpers/net';
import * as et from '../../lib';

const EXAMPLES = path.resolve(__dirname, '..', '..', 'examples');

function runExample(name: string, args: string[], env: Record<string, string>): string {
  const r = spawnSync(process.execPath, [path.join(EXAMPLES, `${name}.js`), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  assert.equal(r.status, 0, `${name} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A class folder of 28 x 28 PNGs: class k is dark with a bright k-th band of rows. */
async function writeClassFolder(root: string, classes: string[], perClass: number): Promise<void> {
  for (const [k, name] of classes.entries()) {
    fs.mkdirSync(path.join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(28 * 28);
      for (let p = 0; p < px.length; p++) px[p] = (Math.floor(p / 28 / 7) === k ? 200 : 30) + ((p * 31 + i * 17) % 40);
      await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path.join(root, name, `${i}.png`));
    }
  }
}

test('examples/pretrain.ts trains and writes a checkpoint; examples/finetune.ts fine-tunes it on an image folder', async () => {
  const dir = tmpDir();
  try {
    const ckpt = path.join(dir, 'pretrained.safetensors');
    const pre = runExample('pretrain', [path.join(EXAMPLES, '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz'), ckpt], {
      EXTREMA_EXAMPLE_IMAGES: '256', EXTREMA_EXAMPLE_EPOCHS: '2',
    });
    const losses = [...pre.matchAll(/epoch (\d)\/2: mean loss ([\d.]+) \((\d+)\/8 steps\)/g)].map((m) => Number(m[2]));
    assert.equal(losses.length, 2, pre);
    assert.ok(losses[1]! < losses[0]!, `the loss falls from epoch 1 to 2: ${losses.join(' -> ')}`);
    assert.match(pre, new RegExp(`checkpoint: ${ckpt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const model = loadCheckpoint(ckpt);
    assert.equal(model.config.encoder.embedDim, 96);
    model.dispose();

    const folder = path.join(dir, 'shapes');
    await writeClassFolder(folder, ['bottom', 'middle', 'top', 'upper'], 16);
    const ft = runExample('finetune', [ckpt, folder, folder], { EXTREMA_EXAMPLE_IMAGES: '64', EXTREMA_EXAMPLE_EPOCHS: '2' });
    const epochs = [...ft.matchAll(/epoch (\d)\/2: train loss ([\d.]+), test top-1 ([\d.]+)% top-5 ([\d.]+)%/g)];
    assert.equal(epochs.length, 2, ft);
    const final = /test accuracy: ([\d.]+)% on (\d+) images/.exec(ft);
    assert.ok(final !== null, ft);
    assert.equal(Number(final[2]), 13, 'ceil(64 / 5) test images');
    assert.ok(Number(final[1]) >= 0 && Number(final[1]) <= 100);
    assert.equal(Number(epochs[1]![4]), 100, 'top-5 of 4 classes is always a hit');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('examples/service.ts serves features over HTTP from a worker: same answer for concurrent requests, 400 for a non-image', async () => {
  const dir = tmpDir();
  try {
    const { ExtremaModel, saveCheckpoint } = await import('../../lib/extrema');
    const model = new ExtremaModel({ encoder: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 1, numHeads: 2 }, projectorHiddenDim: 32, projectorDim: 16, predictorHiddenDim: 32 }, { seed: 1 });
    const ckpt = path.join(dir, 'tiny.safetensors');
    saveCheckpoint(ckpt, model);
    model.dispose();
    const image = path.join(dir, 'x.png');
    await sharp(Buffer.alloc(40 * 30, 90), { raw: { width: 40, height: 30, channels: 1 } }).png().toFile(image);
    const out = runExample('service', [ckpt], { EXTREMA_EXAMPLE_SELFTEST: image });
    assert.match(out, /features: 32 numbers, norm 1\.0000, the 3 requests agree to 1e-6: true; a non-image got 400; batches: \d+/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('examples/pretrain.ts under the launcher: 2 ranks train together and rank 0 writes the checkpoint', { skip: et.distributed.available().gloo ? false : 'this build has no torch.distributed', timeout: 180_000 }, async () => {
  const dir = tmpDir();
  try {
    const ckpt = path.join(dir, 'pretrained.safetensors');
    let stdout = '';
    let stderr = '';
    const r = await et.distributed.launch({
      nprocPerNode: 2, masterPort: await freePort(),
      command: [process.execPath, path.join(EXAMPLES, 'pretrain.js'), path.join(EXAMPLES, '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz'), ckpt],
      env: { EXTREMA_EXAMPLE_IMAGES: '256', EXTREMA_EXAMPLE_EPOCHS: '2', OMP_NUM_THREADS: '1' },
      stdout: (t) => (stdout += t), stderr: (t) => (stderr += t),
    });
    assert.equal(r.exitCode, 0, stderr);
    // 256 images / (2 ranks x 64) = 2 steps an epoch
    assert.match(stdout, /^epoch 2\/2: mean loss [\d.]+ \(rank 0's share; 4\/4 steps\)$/m);
    assert.ok(!/^\[rank 1\] epoch/m.test(stdout), 'rank 1 prints nothing');
    loadCheckpoint(ckpt).dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
