// `extrema embed` against PyTorch doing the same in Python, in the same run:
// one checkpoint (the cpu-small model), one IDX file (the bundled 5,000
// Fashion-MNIST training images), teacher features for every image, written
// to safetensors. Both sides load the checkpoint, read and normalise the
// images and run the teacher in batches; both are timed in-process (no
// interpreter start-up), best of BENCH_REPEATS, median over alternating rounds.
// Two pairs: ATen's layers (--plain-linear and EXTREMA_INFERENCE_KERNELS=aten)
// vs PyTorch eager, and extrema's defaults (the packed Linear kernel,
// attention and LayerNorm kernels) vs PyTorch calling oneDNN's packed
// Linear operators.
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
import { withEnv } from '../test/helpers/env';

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
    // ATen's layers everywhere against PyTorch's eager forward (the same operators),
    // and extrema's defaults against PyTorch with oneDNN's packed Linear operators.
    const variants = [
      { name: 'ATen layers (--plain-linear, EXTREMA_INFERENCE_KERNELS=aten; PyTorch eager)', packed: false },
      { name: `defaults (${et.defaultPackedKernel()} Linear kernel, attention and LayerNorm kernels; PyTorch with oneDNN's packed Linear)`, packed: true },
    ];
    const ours = (packed: boolean): Promise<number> => {
      const run = async () => {
        let best = Infinity;
        for (let r = 0; r < repeats; r++) {
          const t0 = performance.now();
          await embedToFile({ checkpoint, images: IMAGES, out: path.join(dir, `extrema-${packed}.safetensors`), batchSize: batch, packWeights: packed });
          best = Math.min(best, (performance.now() - t0) / 1000);
        }
        return best;
      };
      return packed ? run() : withEnv('EXTREMA_INFERENCE_KERNELS', 'aten', run);
    };
    const theirs = (packed: boolean): { seconds: number; torch: string } => {
      const spec = path.join(dir, `spec-${packed}.json`);
      fs.writeFileSync(spec, JSON.stringify({ config, checkpoint, images: IMAGES, out: path.join(dir, `torch-${packed}.safetensors`), batch, threads, repeats, packed }));
      const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'embed.py'), spec], { env: pythonEnv(), encoding: 'utf8' });
      if (py.status !== 0) throw new Error(`python side failed:\n${py.stderr}`);
      return JSON.parse(py.stdout) as { seconds: number; torch: string };
    };
    const results = variants.map(() => [] as { ours: number; theirs: number }[]);
    let torch = '';
    for (let r = 0; r < rounds; r++) {
      for (const [i, v] of variants.entries()) {
        const o = await ours(v.packed);
        const t = theirs(v.packed);
        torch = t.torch;
        results[i]!.push({ ours: o, theirs: t.seconds });
      }
    }
    // Each pair must have computed the same features; the two variants agree to float rounding.
    const features = (file: string) => et.loadSafetensors(path.join(dir, file)).tensors.get('features')!;
    const maxDiff = (x: string, y: string) => {
      const [a, b] = [features(x), features(y)];
      try {
        return et.scope(() => a.sub(b).abs().max().item() as number);
      } finally {
        a.dispose();
        b.dispose();
      }
    };
    const count = et.scope(() => features('extrema-true.safetensors').shape[0]!);
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${torch}, median of ${rounds} alternating rounds (best of ${repeats} each)`);
    console.log(`features of ${count} images, max abs difference: ATen layers vs PyTorch eager ${maxDiff('extrema-false.safetensors', 'torch-false.safetensors').toExponential(1)}, `
      + `defaults vs PyTorch packed ${maxDiff('extrema-true.safetensors', 'torch-true.safetensors').toExponential(1)}, defaults vs ATen layers ${maxDiff('extrema-true.safetensors', 'extrema-false.safetensors').toExponential(1)}`);
    console.log('| operation | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
    console.log('|---|---|---|---|');
    variants.forEach((v, i) => {
      const o = median(results[i]!.map((r) => r.ours));
      const t = median(results[i]!.map((r) => r.theirs));
      console.log(`| embed ${path.basename(IMAGES)} (${count} images, cpu-small teacher, batch ${batch}), ${v.name} | ${formatSeconds(o)} (${(count / o).toFixed(0)} img/s) | ${formatSeconds(t)} (${(count / t).toFixed(0)} img/s) | ${median(results[i]!.map((r) => r.ours / r.theirs)).toFixed(2)}x |`);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
