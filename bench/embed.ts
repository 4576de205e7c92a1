// `extrema embed` against PyTorch doing the same in Python, in the same run:
// one checkpoint (the cpu-small model), one IDX file (the bundled 5,000
// Fashion-MNIST training images), teacher features for every image, written
// to safetensors. Both sides load the checkpoint, read and normalise the
// images and run the teacher in batches; both are timed in-process (no
// interpreter start-up), best of BENCH_REPEATS, median over alternating rounds.
//   node dist/bench/embed.js   (BENCH_THREADS, BENCH_ROUNDS, BENCH_BATCH)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { ExtremaModel, saveCheckpoint } from '../lib/extrema';
import { embedToFile } from '../lib/eval/embed';
import { formatSeconds, median } from './timing';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

const IMAGES = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');
const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const repeats = Number(process.env.BENCH_REPEATS ?? 2);
const batch = Number(process.env.BENCH_BATCH ?? 256);
et.setNumThreads(threads);

async function main(): Promise<void> {
  const dir = tmpDir('extrema-bench-embed-');
  try {
    const config = et.train.pretrainConfig({ preset: 'cpu-small', train: IMAGES }).model;
    const model = new ExtremaModel(config, { seed: 0 });
    const checkpoint = path.join(dir, 'model.safetensors');
    saveCheckpoint(checkpoint, model);
    model.dispose();
    const spec = path.join(dir, 'spec.json');
    fs.writeFileSync(spec, JSON.stringify({ config, checkpoint, images: IMAGES, out: path.join(dir, 'torch.safetensors'), batch, threads, repeats }));
    const ours = async (): Promise<number> => {
      let best = Infinity;
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        await embedToFile({ checkpoint, images: IMAGES, out: path.join(dir, 'extrema.safetensors'), batchSize: batch });
        best = Math.min(best, (performance.now() - t0) / 1000);
      }
      return best;
    };
    const theirs = (): { seconds: number; torch: string } => {
      const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'embed.py'), spec], { env: pythonEnv(), encoding: 'utf8' });
      if (py.status !== 0) throw new Error(`python side failed:\n${py.stderr}`);
      return JSON.parse(py.stdout) as { seconds: number; torch: string };
    };
    const results: { ours: number; theirs: number }[] = [];
    let torch = '';
    for (let r = 0; r < rounds; r++) {
      const o = await ours();
      const t = theirs();
      torch = t.torch;
      results.push({ ours: o, theirs: t.seconds });
    }
    // The two sides must have computed the same features.
    const a = et.loadSafetensors(path.join(dir, 'extrema.safetensors')).tensors.get('features')!;
    const b = et.loadSafetensors(path.join(dir, 'torch.safetensors')).tensors.get('features')!;
    const diff = et.scope(() => a.sub(b).abs().max().item());
    const count = a.shape[0]!;
    a.dispose();
    b.dispose();
    const o = median(results.map((r) => r.ours));
    const t = median(results.map((r) => r.theirs));
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${torch}, median of ${rounds} alternating rounds (best of ${repeats} each)`);
    console.log(`features of ${count} images agree to ${diff.toExponential(1)} (max abs difference)`);
    console.log('| operation | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
    console.log('|---|---|---|---|');
    console.log(`| embed ${path.basename(IMAGES)} (${count} images, cpu-small teacher, batch ${batch}) | ${formatSeconds(o)} (${(count / o).toFixed(0)} img/s) | ${formatSeconds(t)} (${(count / t).toFixed(0)} img/s) | ${median(results.map((r) => r.ours / r.theirs)).toFixed(2)}x |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
