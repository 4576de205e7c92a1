// Data-parallel pretraining through the launcher: two ranks keep bitwise the
// same student and teacher, follow the single-process schedule of the same
// global batch, and only rank 0 writes; a killed rank stops the run with a
// non-zero exit that names it, and the run resumes from its last checkpoint
// with another number of processes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { launch } from '../../lib/distributed';
import { pretrain, RunLog, type PretrainConfigInput } from '../../lib/train';
import { readCheckpoint } from '../../lib/extrema';
import { checkpointKnn } from '../../lib/train/knn-monitor';
import { tmpDir } from '../helpers/oracle';
import { freePort } from '../helpers/net';

const skip = et.distributed.available().gloo ? false : 'this build has no torch.distributed';
const RANK_PROGRAM = path.join(__dirname, 'pretrain-rank.js');
const BUNDLED = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist');
const BUNDLED_TRAIN = path.join(BUNDLED, 'train-images-idx3-ubyte.gz');
const BUNDLED_TEST = path.join(BUNDLED, 't10k-images-idx3-ubyte.gz');

function tiny(out: string, over: PretrainConfigInput = {}): PretrainConfigInput {
  return {
    preset: 'demo', out, trainLimit: 160, batchSize: 16, epochs: 2, warmupEpochs: 1, seed: 5, syncCheckEvery: 1,
    model: {
      encoder: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 1, numHeads: 2, classAttentionLayers: 1 },
      projectorHiddenDim: 48, projectorDim: 16, predictorHiddenDim: 32, maskRatio: 0.75, numMasks: 2,
    },
    knn: { every: 1, bankLimit: 64, queryLimit: 32, k: 10, probe: false },
    ...over,
  };
}

async function launchRanks(recipe: PretrainConfigInput, nproc: number, env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const r = await launch({
    nprocPerNode: nproc, masterPort: await freePort(), command: [process.execPath, RANK_PROGRAM, JSON.stringify(recipe)],
    env: { OMP_NUM_THREADS: '1', ...env }, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), graceMs: 2000,
  });
  const results = stdout.split('\n').filter((l) => l.replace(/^\[rank \d+\] /, '').startsWith('{')).map((l) => JSON.parse(l.replace(/^\[rank \d+\] /, '')) as { rank: number; iterations: number; losses: number[]; knnAfter: number | null });
  return { ...r, stdout, stderr, results };
}

const logOf = (out: string) => RunLog.read(path.join(out, 'log.jsonl'));

test('2 ranks x batch 16: same weights on both at every step, the schedule of 1 process x batch 32, rank 0 alone writes', { skip, timeout: 300_000 }, async () => {
  const dir = tmpDir();
  try {
    const two = path.join(dir, 'two');
    const r = await launchRanks(tiny(two), 2);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(r.results.map((x) => x.rank).sort(), [0, 1]);
    const [a, b] = r.results;
    // every rank returns the averaged losses, so the same ones
    assert.deepEqual(a!.losses, b!.losses);
    assert.equal(a!.iterations, 10); // 160 images / (2 x 16) = 5 steps a epoch
    // the kNN monitor's shares, all-gathered, give what the whole sets give on the final teacher
    assert.equal(a!.knnAfter, b!.knnAfter);
    const whole = await checkpointKnn({ checkpoint: path.join(two, 'checkpoint.safetensors'), train: BUNDLED_TRAIN, test: BUNDLED_TEST, bankLimit: 64, queryLimit: 32, k: 10, temperature: 0.07, batchSize: 256, device: 'cpu' });
    assert.ok(Math.abs(a!.knnAfter! - whole.accuracy) <= 1 / 32 + 1e-9, `sharded kNN ${a!.knnAfter} vs ${whole.accuracy}`);
    const single = path.join(dir, 'one');
    await pretrain(tiny(single, { batchSize: 32 }), {}, { resume: 'never' });
    const lrs = (out: string) => logOf(out).filter((x) => x.kind === 'step').map((x) => x.lr as number);
    assert.deepEqual(lrs(two), lrs(single), 'the peak lr counts both ranks\' images and the schedule runs over the same steps');
    const losses = logOf(two).filter((x) => x.kind === 'step').map((x) => x.loss as number);
    assert.deepEqual(losses, a!.losses);
    assert.ok(losses.every(Number.isFinite));
    // one writer: one config, one log with one record per step, one checkpoint that knows its world
    assert.equal(logOf(two).filter((x) => x.kind === 'knn').length, 3);
    const ckpt = readCheckpoint(path.join(two, 'checkpoint.safetensors'));
    try {
      assert.equal(JSON.parse(ckpt.metadata.position!).worldSize, 2);
    } finally {
      ckpt.dispose();
    }
    assert.equal(fs.readdirSync(two).filter((f) => f.includes('.tmp')).length, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const [perRank, accumulate] of [[16, 1], [8, 2]] as const) test(`with --global-draws, 2 ranks x batch ${perRank}${accumulate > 1 ? ` x ${accumulate} accumulated` : ''} train as 1 process x batch ${2 * perRank}${accumulate > 1 ? ` x ${accumulate} accumulated` : ''}: loss curve and final student and teacher weights to float tolerance`, { skip, timeout: 300_000 }, async () => {
  const dir = tmpDir();
  try {
    // LayerNorm heads: BatchNorm would normalise each rank's half on its own
    const exact = (out: string, over: PretrainConfigInput = {}) => tiny(out, { globalDraws: true, accumulate, knn: { every: 0 }, model: { ...tiny(out).model, headNorm: 'layer' }, ...over });
    const two = path.join(dir, 'two');
    const r = await launchRanks(exact(two, { batchSize: perRank }), 2);
    assert.equal(r.exitCode, 0, r.stderr);
    const one = path.join(dir, 'one');
    const single = await pretrain(exact(one, { batchSize: 2 * perRank }), {}, { resume: 'never' });
    const losses = r.results[0]!.losses;
    assert.equal(losses.length, single.losses.length);
    losses.forEach((l, i) => assert.ok(Math.abs(l - single.losses[i]!) <= 1e-5 * Math.abs(single.losses[i]!) + 1e-6, `step ${i + 1}: loss ${l} (2 ranks) vs ${single.losses[i]} (1 process)`));
    assert.ok(single.losses.at(-1)! !== single.losses[0]!, 'the curve moved');
    const a = readCheckpoint(path.join(two, 'checkpoint.safetensors'));
    const b = readCheckpoint(path.join(one, 'checkpoint.safetensors'));
    try {
      let compared = 0;
      for (const [name, t] of b.state) {
        if (!/^(base_encoder|momentum_encoder|predictor)\./.test(name) || !['float32', 'float64'].includes(t.dtype)) continue;
        // A key bias cannot change attention (softmax ignores a shift shared by all keys): its
        // gradient is rounding noise, which AdamW's m / sqrt(v) scales up to full lr-sized steps
        // in directions that differ with summation order. Skip it.
        if (name.endsWith('.attn.k.bias')) continue;
        const x = a.state.get(name)!.toTypedArray<'float32'>();
        const y = t.toTypedArray<'float32'>();
        let worst = 0;
        for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) - 1e-6 * Math.abs(y[i]!));
        assert.ok(worst <= 2e-5, `${name}: off by ${worst}`);
        compared++;
      }
      assert.ok(compared > 20, `compared ${compared} tensors`);
    } finally {
      a.dispose();
      b.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a killed rank: the launcher names it and exits non-zero; the run resumes from its last checkpoint in 1 process', { skip, timeout: 300_000 }, async () => {
  const dir = tmpDir();
  try {
    const out = path.join(dir, 'run');
    const r = await launchRanks(tiny(out, { epochs: 3 }), 2, { DIE_AT_ITERATION: '7' });
    assert.notEqual(r.exitCode, 0);
    assert.ok(r.failures.some((f) => f.rank === 1 && f.signal === 'SIGKILL'), JSON.stringify(r.failures));
    assert.match(r.stderr, /extrema launch: rank 1 \(pid \d+\) was killed by SIGKILL/);
    // the last checkpoint is the end of epoch 1 (iteration 5)
    const messages: string[] = [];
    const resumed = await pretrain(tiny(out, { epochs: 3 }), { onMessage: (m) => messages.push(m) }, { resume: 'auto' });
    assert.ok(messages.some((m) => /written by 2 processes and this run has 1: epoch 1, step 0 becomes step 0 of 10/.test(m)), messages.join('\n'));
    assert.ok(messages.some((m) => /resumed from .* at epoch 1, step 0 \(iteration 10\)/.test(m)), messages.join('\n'));
    assert.equal(resumed.iterations, 30);
    assert.ok(resumed.knnAfter !== null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
