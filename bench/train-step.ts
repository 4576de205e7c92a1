// One training step of the small CPU recipe (issue 4: 28 px, patch 4, width
// 192, depth 6, 3 heads, 2 class-attention blocks, projector/predictor
// 1024/256, 80% x 2 masks, batch 256): augmentation, masked student and full
// teacher forward, backward, AdamW, EMA. Timed against the PyTorch reference
// recipe (bench/pretrain_reference.py --time-steps) in the same run; both
// report peak RSS. Needs Debian's dataset-fashion-mnist (or BENCH_TRAIN=<idx>).
//   node dist/bench/train-step.js      (BENCH_STEPS, BENCH_THREADS)
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { AUTHORS_HEADS } from '../lib/train/config';
import { openDataset, DataLoader } from '../lib/data';
import { augmentConfig, augmentPair } from '../lib/data/augment';
import { pythonEnv } from '../test/helpers/oracle';

const steps = Number(process.env.BENCH_STEPS ?? 8);
const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
const trainFile = process.env.BENCH_TRAIN ?? '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

async function ours(): Promise<{ median: number; rss: number }> {
  et.setNumThreads(threads);
  // the authors' heads, as bench/pretrain_reference.py builds by default
  const cfg = et.train.pretrainConfig({ preset: 'cpu-small', train: trainFile, model: AUTHORS_HEADS, batchSize: 256 });
  const model = new et.ExtremaModel(cfg.model, { seed: 0 });
  const opt = new et.AdamW(et.paramGroupsForDecay(model.studentParameters(), { weightDecay: cfg.weightDecay }), { lr: 5e-4, betas: cfg.betas, weightDecay: cfg.weightDecay });
  const aug = augmentConfig({ ...cfg.augment, size: 28, mean: [0.5], std: [0.5] });
  const gAug = et.Generator.create(1);
  const gMask = et.Generator.create(2);
  const loader = new DataLoader(openDataset(trainFile, { size: 28 }), { batchSize: cfg.batchSize, seed: 0 });
  const times: number[] = [];
  let i = 0;
  for await (const { batches } of loader.steps(0)) {
    const { value: batch } = await batches.next();
    if (batch === undefined) break;
    const t0 = performance.now();
    et.scope(() => {
      const { student, teacher } = augmentPair(batch.images, aug, gAug);
      model.forward(student, teacher, { generator: gMask }).loss.backward();
    });
    opt.step();
    model.zeroGrad();
    model.updateTeacher(0.996);
    times.push((performance.now() - t0) / 1000);
    batch.images.dispose();
    batch.labels?.dispose();
    if (++i > steps) break;
  }
  times.shift(); // warm-up
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)] as number, rss: process.resourceUsage().maxRSS * 1024 };
}

function theirs(): { median: number; rss: number; torch: string } {
  const r = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'pretrain_reference.py'), '--out', os.tmpdir(), '--time-steps', String(steps), '--threads', String(threads)], { env: pythonEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python side failed:\n${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { median_step_s: number; peak_rss_bytes: number; torch: string };
  return { median: j.median_step_s, rss: j.peak_rss_bytes, torch: j.torch };
}

void (async () => {
  const py = theirs();
  const ts = await ours();
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${py.torch}; median of ${steps} steps after one warm-up`);
  console.log('| training step, batch 256 (cpu-small recipe) | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
  console.log('|---|---|---|---|');
  console.log(`| step time | ${(ts.median * 1000).toFixed(0)} ms | ${(py.median * 1000).toFixed(0)} ms | ${(ts.median / py.median).toFixed(2)}x |`);
  console.log(`| images/s | ${(256 / ts.median).toFixed(0)} | ${(256 / py.median).toFixed(0)} | |`);
  console.log(`| peak RSS | ${mb(ts.rss)} | ${mb(py.rss)} | ${(ts.rss / py.rss).toFixed(2)}x |`);
})();
