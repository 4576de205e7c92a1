// The training run: a run stopped and resumed gives the same loss curve, bit
// for bit, as an uninterrupted one (CPU float32, same seed); a non-finite loss
// stops with a clear error and leaves the last good checkpoint untouched;
// the run folder holds config, log, checkpoint and plots.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { pretrain, TrainingError, RunLog, type PretrainConfigInput } from '../../lib/train';
import { loadCheckpoint } from '../../lib/extrema';
import { tmpDir } from '../helpers/oracle';

function tiny(out: string, over: PretrainConfigInput = {}): PretrainConfigInput {
  return {
    preset: 'demo', out, trainLimit: 160, batchSize: 32, epochs: 2, warmupEpochs: 1, seed: 5,
    model: {
      encoder: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 1, numHeads: 2, classAttentionLayers: 1, dropPathRate: 0.1 },
      projectorHiddenDim: 48, projectorDim: 16, predictorHiddenDim: 32, maskRatio: 0.75, numMasks: 2,
    },
    knn: { every: 1, bankLimit: 64, queryLimit: 32, k: 10, probe: true },
    ...over,
  };
}

const stepLosses = (out: string) => RunLog.read(path.join(out, 'log.jsonl')).filter((r) => r.kind === 'step').map((r) => r.loss as number);

test('a run stopped mid-epoch and resumed gives the same loss curve and weights, bit for bit', async () => {
  const dir = tmpDir();
  try {
    const full = path.join(dir, 'full');
    const split = path.join(dir, 'split');
    const a = await pretrain(tiny(full), {}, { resume: 'never' });
    assert.equal(a.iterations, 10);
    const stopped = await pretrain(tiny(split), {}, { resume: 'never', stopAfterIterations: 3 });
    assert.equal(stopped.iterations, 3);
    // What a checkpoint write killed with -9 leaves behind: a temp file of a writer that is gone.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const stale = path.join(split, `.checkpoint.safetensors.${deadPid}.${Date.now()}.tmp`);
    fs.writeFileSync(stale, Buffer.alloc(1024));
    const messages: string[] = [];
    const b = await pretrain(tiny(split), { onMessage: (m) => messages.push(m) }, { resume: 'auto' });
    assert.ok(messages.some((m) => /resumed from .* at epoch 0, step 3 \(iteration 3\)/.test(m)), messages.join('\n'));
    assert.equal(fs.existsSync(stale), false, 'the stale temp file is removed when the run resumes');
    assert.ok(messages.some((m) => m.includes(`removed ${stale}, left by a write that was killed`)), messages.join('\n'));
    assert.equal(b.iterations, 10);
    const la = stepLosses(full);
    assert.equal(la.length, 10);
    assert.deepEqual(stepLosses(split), la, 'identical losses, step by step');
    const ma = loadCheckpoint(a.checkpoint);
    const mb = loadCheckpoint(b.checkpoint);
    for (const [k, t] of ma.stateDict()) {
      assert.deepEqual(Buffer.from(mb.stateDict().get(k)!.toTypedArray().buffer), Buffer.from(t.toTypedArray().buffer), `${k} bit-identical`);
    }
    ma.dispose();
    mb.dispose();
    const knn = RunLog.read(path.join(split, 'log.jsonl')).filter((r) => r.kind === 'knn');
    assert.deepEqual(knn.map((r) => r.epoch), [0, 1, 2], 'kNN before training and after each epoch, once each');
    // The cached linear probe before and after, logged once each, the before value carried over the resume.
    const probes = RunLog.read(path.join(split, 'log.jsonl')).filter((r) => r.kind === 'event' && r.event === 'probe');
    assert.deepEqual(probes.map((r) => r.epoch), [0, 2]);
    assert.deepEqual([b.probeBefore, b.probeAfter], probes.map((r) => r.top1));
    assert.deepEqual([a.probeBefore, a.probeAfter], [b.probeBefore, b.probeAfter], 'the same probe as the run that never stopped');
    for (const p of [b.probeBefore!, b.probeAfter!]) assert.ok(p >= 0 && p <= 1, String(p));
    for (const f of ['config.json', 'log.jsonl', 'checkpoint.safetensors', 'loss.png', 'lr.png', 'knn.png']) assert.ok(fs.existsSync(path.join(split, f)), f);
    const cfg = JSON.parse(fs.readFileSync(path.join(split, 'config.json'), 'utf8'));
    assert.equal(cfg.model.encoder.embedDim, 32);
    assert.equal(cfg.batchSize, 32);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-finite loss stops the run with a clear error and keeps the last good checkpoint', async () => {
  const dir = tmpDir();
  try {
    const out = path.join(dir, 'run');
    await pretrain(tiny(out, { epochs: 1, warmupEpochs: 0.5, knn: { every: 0 } }), {}, { resume: 'never' });
    const ckpt = path.join(out, 'checkpoint.safetensors');
    // A student weight turned NaN (what a diverged step leaves), then training continues from that checkpoint.
    const saved = et.loadSafetensors(ckpt);
    const poisoned = 'base_encoder.patch_embed.proj.weight';
    et.noGrad(() => et.aten.fill__Scalar(saved.tensors.get(poisoned)!, NaN));
    et.saveSafetensors(ckpt, Object.fromEntries(saved.tensors), saved.metadata);
    for (const t of saved.tensors.values()) t.dispose();
    const before = fs.readFileSync(ckpt);
    await assert.rejects(
      pretrain(tiny(out, { epochs: 3, knn: { every: 0 } }), {}, { resume: 'auto' }),
      (e: Error) => e instanceof TrainingError && /The loss is NaN at epoch 1, step \d+ .*last good checkpoint is .*checkpoint\.safetensors/.test(e.message),
    );
    assert.deepEqual(fs.readFileSync(ckpt), before, 'the checkpoint is untouched');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrain config: presets, overrides, errors naming the field', () => {
  const demo = et.train.pretrainConfig();
  assert.equal(demo.model.encoder.embedDim, 192);
  assert.equal(demo.model.maskRatio, 0.8);
  assert.equal(demo.model.numMasks, 2);
  const small = et.train.pretrainConfig({ preset: 'cpu-small' });
  assert.deepEqual([small.batchSize, small.epochs, small.warmupEpochs, small.baseLr, small.predictorLrScale, small.model.projectorHiddenDim], [128, 10, 1, 5e-4, 10, 1024]);
  assert.deepEqual([small.model.headNorm, small.model.momentumSchedule, small.model.momentum, small.knn.probe], ['batch', 'constant', 0.99, true]);
  const authors = et.train.pretrainConfig({ preset: 'cpu-small', model: et.train.AUTHORS_HEADS });
  assert.deepEqual([authors.model.headNorm, authors.model.momentumSchedule, authors.model.momentum], ['layer', 'cosine', 0.996]);
  assert.equal(et.train.pretrainConfig({ preset: 'vit-b-224' }).model.encoder.embedDim, 768);
  assert.equal(et.train.pretrainConfig({ knn: { k: 20 } }).knn.temperature, 0.07, 'nested fields merge');
  assert.throws(() => et.train.pretrainConfig({ epochz: 3 } as never), /Unknown pretrain config field "epochz"/);
  assert.throws(() => et.train.pretrainConfig({ preset: 'nope' }), /one of vit-b-224, vit-s-224, cpu-small, demo for "preset"/);
  assert.throws(() => et.train.pretrainConfig({ warmupEpochs: 9, epochs: 5 }), /warmupEpochs/);
  assert.throws(() => et.train.pretrainConfig({ model: { numMasks: 9 } }), /9 disjoint masks of 9 visible tokens need 81 patches but the image has 49/);
  assert.throws(() => et.train.pretrainConfig({ precision: 'fp16' }), /fp16 with a dynamic loss scaler is for CUDA/);
  assert.throws(() => et.train.pretrainConfig({ globalDraws: true, model: { encoder: { dropPathRate: 0.1 } } }), /global draws cover augmentations and masks but not drop path \(rate 0\.1\)/);
});

test('bf16 autocast (on CPU here, on CUDA in the paper recipes) trains with finite losses close to fp32', async () => {
  const dir = tmpDir();
  try {
    const cfg = (precision: 'fp32' | 'bf16', out: string) => tiny(out, { precision, epochs: 1, warmupEpochs: 0.5, trainLimit: 96, knn: { every: 0 } });
    const fp32 = await pretrain(cfg('fp32', path.join(dir, 'fp32')), {}, { resume: 'never' });
    const bf16 = await pretrain(cfg('bf16', path.join(dir, 'bf16')), {}, { resume: 'never' });
    assert.equal(bf16.losses.length, 3);
    bf16.losses.forEach((l, i) => {
      assert.ok(Number.isFinite(l));
      assert.ok(Math.abs(l - fp32.losses[i]!) < 0.05 * Math.abs(fp32.losses[i]!) + 0.02, `step ${i}: bf16 ${l} vs fp32 ${fp32.losses[i]}`);
    });
    assert.notDeepEqual(bf16.losses, fp32.losses, 'autocast really ran in bf16');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gradient accumulation: micro-batches per optimizer step, and clipping, run to the end', async () => {
  const dir = tmpDir();
  try {
    const r = await pretrain(tiny(path.join(dir, 'acc'), { batchSize: 16, accumulate: 2, clipGrad: 1, epochs: 2, warmupEpochs: 0.5, knn: { every: 0 } }), {}, { resume: 'never' });
    // 160 images / 16 per micro-batch = 10 micro-batches = 5 optimizer steps per epoch.
    assert.equal(r.iterations, 10);
    assert.ok(r.losses.every(Number.isFinite));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'acc', 'config.json'), 'utf8'));
    assert.deepEqual([cfg.batchSize, cfg.accumulate, cfg.clipGrad], [16, 2, 1]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('collapse signs are measured every collapseEvery steps, logged with the loss, passed to the step hook and plotted', async () => {
  const dir = tmpDir();
  try {
    const seen: number[] = [];
    const r = await pretrain(tiny(dir, { epochs: 1, warmupEpochs: 0, collapseEvery: 2, knn: { every: 1, bankLimit: 64, queryLimit: 32, k: 10, probe: false } }), {
      onStep: (s) => { if (s.collapse !== undefined) seen.push(s.iteration); },
    }, { resume: 'never' });
    assert.equal(r.iterations, 5);
    const steps = RunLog.read(path.join(dir, 'log.jsonl')).filter((s) => s.kind === 'step');
    const measured = steps.filter((s) => s.spread !== undefined);
    assert.deepEqual(measured.map((s) => s.iteration), [1, 3, 5], 'measured on the steps that start at iterations 0, 2 and 4');
    assert.deepEqual(seen, [1, 3, 5]);
    for (const s of measured) {
      const [spread, rank, cos] = [s.spread as number, s.effectiveRank as number, s.meanCosine as number];
      assert.ok(spread > 0 && spread < 2, `spread ${spread}`);
      assert.ok(rank >= 1 && rank <= 32, `effective rank ${rank} within [1, min(batch, width)]`);
      assert.ok(cos >= -1 && cos <= 1, `mean cosine ${cos}`);
    }
    assert.ok(r.plots.some((p) => p.endsWith('collapse.png')) && fs.existsSync(path.join(dir, 'collapse.png')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
