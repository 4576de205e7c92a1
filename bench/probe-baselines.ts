// Cached linear probes side by side on one labelled train/test pair: the raw
// pixels, the randomly initialised encoder of the checkpoint's architecture
// (same seed as a fresh pretraining run), and the checkpoint's teacher. The
// same head, recipe and batch order for all three (`extrema linprobe --mode
// cached`: BatchNorm1d + Linear, SGD momentum 0.9, lr 0.1 x batch/256, 10%
// warmup, 20 epochs).
//   node dist/bench/probe-baselines.js <checkpoint.safetensors> [train] [test] [trainLimit] [testLimit]
// (limits: the first n images; 0 or none: all. Pretraining's in-run probe
// uses the kNN sets: 10000 / 2000 by default.)
import * as path from 'node:path';
import * as et from '../lib';
import { cachedProbe, linearProbeHead, shuffledBatches, trainLinearHead, evaluateHead } from '../lib/eval/linprobe';
import { ExtremaModel, loadEncoder, readCheckpoint } from '../lib/extrema';

const BUNDLED = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist');
const checkpoint = process.argv[2];
if (checkpoint === undefined) throw new Error('usage: probe-baselines.js <checkpoint.safetensors> [train] [test]');
const trainFile = process.argv[3] ?? path.join(BUNDLED, 'train-images-idx3-ubyte.gz');
const testFile = process.argv[4] ?? path.join(BUNDLED, 't10k-images-idx3-ubyte.gz');
const trainLimit = Number(process.argv[5] ?? 0);
const testLimit = Number(process.argv[6] ?? 0);

/** The probe on flattened, normalised pixels (the features of no encoder at all). */
async function pixelProbe(train: et.data.ImageDataset, test: et.data.ImageDataset): Promise<number> {
  const pixels = async (data: et.data.ImageDataset) => {
    const rows: et.Tensor[] = [];
    const labels: et.Tensor[] = [];
    for await (const b of new et.DataLoader(data, { mode: 'eval', batchSize: 512 }).batches()) {
      rows.push(et.scope(() => et.normalizeImages(b.images).flatten(1)).keep());
      labels.push(b.labels!.keep());
      b.images.dispose();
    }
    return et.scope(() => ({ x: et.cat(rows, 0), y: et.cat(labels, 0) }));
  };
  const a = await pixels(train);
  const b = await pixels(test);
  const head = linearProbeHead(a.x.shape[1]!, 10, { seed: 0 });
  const batches = shuffledBatches(a.x.shape[0]!, 256, 20, 0);
  trainLinearHead(head, a.x, a.y, batches, { lr: 0.1, warmupSteps: Math.round(batches.length * 0.1) });
  const { top1 } = evaluateHead(head, b.x, b.y, 10);
  for (const t of [a.x, a.y, b.x, b.y]) t.dispose();
  head.dispose();
  return top1;
}

async function main(): Promise<void> {
  const config = readCheckpoint(checkpoint!);
  const cfg = config.config;
  config.dispose();
  const size = cfg.encoder.imgSize[0];
  const channels = cfg.encoder.inChans === 1 ? 1 : 3;
  const train = et.openDataset(trainFile, { size, channels, limit: trainLimit });
  const test = et.openDataset(testFile, { size, channels, limit: testLimit });
  const fresh = new ExtremaModel(cfg, { seed: 0 });
  // the same seed as a pretraining run's probe (its seed 0)
  const random = await cachedProbe(fresh.momentum_encoder, train, test, { seed: 0 });
  fresh.dispose();
  const { encoder } = loadEncoder(checkpoint!);
  const trained = await cachedProbe(encoder, train, test, { seed: 0 });
  encoder.dispose();
  const raw = await pixelProbe(train, test);
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  console.log(`train ${train.describe}\ntest ${test.describe}`);
  console.log('| features | linear probe top-1 |');
  console.log('|---|---|');
  console.log(`| raw pixels | ${pct(raw)} |`);
  console.log(`| random init (seed 0) | ${pct(random.top1)} |`);
  console.log(`| ${path.basename(path.dirname(path.resolve(checkpoint!)))}/${path.basename(checkpoint!)} (teacher) | ${pct(trained.top1)} |`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
