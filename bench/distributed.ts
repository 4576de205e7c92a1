// Data-parallel pretraining on this machine (issue 13): the cpu-small ExtreMA
// step (augment, 80% x 2 masks, forward, backward, AdamW, EMA) at a global
// batch of 256, as 1 process with 2 threads against 2 Gloo ranks with 1 thread
// and batch 128 each, ours and PyTorch's (bench/distributed_reference.py, its
// DistributedDataParallel under torchrun) in the same run; both all-reduce
// during backward with c10d's Reducer. A rank times its steps with the
// gradient all-reduce and without it; the difference is the communication a
// step waits for.
//   node dist/bench/distributed.js            (BENCH_STEPS, default 12)
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as et from '../lib';
import { AUTHORS_HEADS } from '../lib/train/config';
import { ProcessGroup, DistributedDataParallel, launch } from '../lib/distributed';
import { openDataset } from '../lib/data';
import { augmentConfig, augmentPair } from '../lib/data/augment';
import { pythonEnv } from '../test/helpers/oracle';
import { freePort } from '../test/helpers/net';

const STEPS = Number(process.env.BENCH_STEPS ?? 12);
const FMNIST = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

interface Timing { world: number; batch: number; threads: number; step_s: number; no_sync_step_s: number; grad_bytes: number; allreduce_s?: number }

/** One process's part: `batch` images of its own, timed with and without the gradient sync. */
async function rankTiming(batch: number, threads: number): Promise<Timing | null> {
  et.setNumThreads(threads);
  const group = process.env.WORLD_SIZE === undefined ? null : await ProcessGroup.init();
  const rank = group?.rank ?? 0;
  // the authors' heads, as bench/distributed_reference.py builds
  const cfg = et.train.pretrainConfig({ preset: 'cpu-small', train: FMNIST, model: AUTHORS_HEADS });
  const model = new et.ExtremaModel(cfg.model, { seed: 0 });
  const params = model.studentParameters().map(([, p]) => p);
  const ddp = group === null ? null : new DistributedDataParallel(group, params);
  if (ddp !== null) await ddp.broadcastFromRoot([...model.stateDict().values()]);
  const opt = new et.AdamW(et.paramGroupsForDecay(model.studentParameters(), { weightDecay: cfg.weightDecay }), { lr: 5e-4, betas: cfg.betas, weightDecay: cfg.weightDecay });
  const aug = augmentConfig({ ...cfg.augment, size: 28, mean: [0.5], std: [0.5] });
  const gAug = et.Generator.create(1 + rank);
  const gMask = et.Generator.create(100 + rank);
  const data = openDataset(FMNIST, { size: 28, limit: (rank + 1) * batch });
  const pixels = new Uint8Array(batch * 28 * 28);
  for (let i = 0; i < batch; i++) pixels.set(await data.read(rank * batch + i), i * 28 * 28);
  const images = et.fromTypedArray(pixels, [batch, 1, 28, 28]);
  const step = async (sync: boolean) => {
    et.scope(() => {
      const { student, teacher } = augmentPair(images, aug, gAug);
      const { loss } = model.forward(student, teacher, { generator: gMask });
      if (sync) ddp?.beforeBackward();
      loss.backward();
    });
    if (ddp !== null && sync) await ddp.afterBackward();
    opt.step();
    model.zeroGrad();
    model.updateTeacher(0.996);
  };
  const timed = async (sync: boolean) => {
    const times: number[] = [];
    for (let i = 0; i < STEPS + 2; i++) {
      await group?.barrier();
      const t0 = performance.now();
      await step(sync);
      times.push((performance.now() - t0) / 1000);
    }
    const sorted = times.slice(2).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  const withSync = await timed(true);
  const without = group === null ? withSync : await timed(false);
  const gradBytes = params.reduce((n, p) => n + p.numel * 4, 0);
  // a lone all-reduce of all the gradients at once: Gloo's bandwidth here
  let allreduce: number | undefined;
  if (group !== null) {
    const flat = et.zeros([gradBytes / 4]);
    const times: number[] = [];
    for (let i = 0; i < 12; i++) {
      await group.barrier();
      const t0 = performance.now();
      await group.allReduce(flat, 'sum');
      times.push((performance.now() - t0) / 1000);
    }
    allreduce = times.slice(2).sort((a, b) => a - b)[5]!;
    flat.dispose();
  }
  const out = { world: group?.size ?? 1, batch, threads, step_s: withSync, no_sync_step_s: without, grad_bytes: gradBytes, allreduce_s: allreduce };
  ddp?.dispose();
  group?.destroy();
  images.dispose();
  return rank === 0 ? out : null;
}

function lastJson(stdout: string): Timing {
  return JSON.parse(stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as Timing;
}

async function oursTwoRanks(): Promise<Timing> {
  let stdout = '';
  const r = await launch({ nprocPerNode: 2, masterPort: await freePort(), command: [process.execPath, __filename, 'rank'], stdout: (t) => (stdout += t), env: { OMP_NUM_THREADS: '1' } });
  if (r.exitCode !== 0) throw new Error(`our 2-rank run failed: ${JSON.stringify(r.failures)}`);
  return lastJson(stdout);
}

function theirs(world: number): Timing & { torch: string } {
  const script = path.join(__dirname, '..', '..', 'bench', 'distributed_reference.py');
  const python = process.env.PYTHON || 'python3';
  const args = world === 1 ? [script, '--batch', '256', '--threads', '2', '--steps', String(STEPS)]
    : ['-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port', String(29400 + Math.floor(Math.random() * 500)), script, '--batch', '128', '--threads', '1', '--steps', String(STEPS)];
  const r = spawnSync(python, args, { env: { ...pythonEnv(), OMP_NUM_THREADS: world === 1 ? '2' : '1' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch (${world} process${world === 1 ? '' : 'es'}) failed:\n${r.stderr}`);
  return lastJson(r.stdout) as Timing & { torch: string };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'rank') {
    const t = await rankTiming(128, 1);
    if (t !== null) process.stdout.write(`${JSON.stringify(t)}\n`);
    return;
  }
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const rows: Array<[string, Timing, Timing]> = [];
  const oursAlone = (await rankTiming(256, 2))!;
  const torchAlone = theirs(1);
  rows.push(['1 process, 2 threads, batch 256', oursAlone, torchAlone]);
  const oursTwo = await oursTwoRanks();
  const torchTwo = theirs(2);
  rows.push(['2 Gloo ranks, 1 thread, batch 128 each', oursTwo, torchTwo]);
  console.log(`cpu-small ExtreMA step, global batch 256, ${STEPS} timed steps (median); torch ${torchAlone.torch}; gradients ${(oursAlone.grad_bytes / 2 ** 20).toFixed(1)} MiB`);
  console.log('| layout | ours: step | ours: all-reduce wait | PyTorch: step | PyTorch: all-reduce wait | step time, ours / PyTorch |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, o, t] of rows) {
    const wait = (x: Timing) => (x.world === 1 ? '-' : `${ms(Math.max(0, x.step_s - x.no_sync_step_s))} (${(100 * Math.max(0, x.step_s - x.no_sync_step_s) / x.step_s).toFixed(0)}%)`);
    console.log(`| ${name} | ${ms(o.step_s)} | ${wait(o)} | ${ms(t.step_s)} | ${wait(t)} | ${(o.step_s / t.step_s).toFixed(2)}x |`);
  }
  if (oursTwo.allreduce_s !== undefined) {
    const n = oursTwo.world;
    const bus = (2 * (n - 1) / n) * oursTwo.grad_bytes / oursTwo.allreduce_s;
    console.log(`one all-reduce of all ${(oursTwo.grad_bytes / 2 ** 20).toFixed(1)} MiB of gradients, ${n} Gloo ranks on this machine: ${ms(oursTwo.allreduce_s)} (bus bandwidth ${(bus / 1e9).toFixed(2)} GB/s)`);
  }
}

main().catch((e: Error) => {
  console.error(e.stack);
  process.exit(1);
});
