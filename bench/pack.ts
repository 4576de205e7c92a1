// Data at GPU speed (issue 10): the loader alone, in images/s, reading a
// folder of JPEGs (decode + resize + centre crop every epoch, by sharp on
// libuv's threads) against reading the same images packed once by
// `extrema pack` (positioned reads of raw uint8, no decoding); and the same
// two jobs in Python in the same run: PIL decoding the folder (one process,
// torchvision-style resize + centre crop) and numpy reading the pack.
// The JPEGs are made here: BENCH_IMAGES (default 1,000) 400 x 400 colour
// JPEGs (quality 90) from the bundled Fashion-MNIST images.
// The pack is read twice: by the loader as it runs (a batch read straight
// into the batch's buffer, readInto) and item by item (one read(i) each, as
// any other dataset), so one run shows what the batch read brings.
//   node dist/bench/pack.js   (BENCH_IMAGES, BENCH_SIZE=224, BENCH_BATCH=256,
//   BENCH_PASSES=2 epochs per rate, best kept; BENCH_ONLY=pack skips the
//   folder's loader pass and the Python side, the slow parts on few cores)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { openDataset, packDataset, DataLoader, disposeBatch, type ImageDataset } from '../lib/data';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

const IDX = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist', 'train-images-idx3-ubyte.gz');
const count = Number(process.env.BENCH_IMAGES ?? 1000);
const size = Number(process.env.BENCH_SIZE ?? 224);
const batch = Number(process.env.BENCH_BATCH ?? 256);
const passes = Number(process.env.BENCH_PASSES ?? 2);
const packOnly = process.env.BENCH_ONLY === 'pack';
if (process.env.BENCH_ONLY !== undefined && !packOnly) throw new Error(`Expected BENCH_ONLY=pack or no BENCH_ONLY but received ${process.env.BENCH_ONLY}`);

async function makeJpegs(dir: string): Promise<void> {
  const src = openDataset(IDX, { size: 28, limit: count });
  for (let i = 0; i < count; i++) {
    const gray = await src.read(i);
    const rgb = Buffer.alloc(28 * 28 * 3);
    for (let p = 0; p < 28 * 28; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = (gray[p]! * (c + 1 + (i % 3))) % 256;
    const cls = path.join(dir, `class-${src.labels![i]}`);
    fs.mkdirSync(cls, { recursive: true });
    await sharp(rgb, { raw: { width: 28, height: 28, channels: 3 } }).resize(400, 400, { kernel: 'cubic' }).jpeg({ quality: 90 }).toFile(path.join(cls, `${String(i).padStart(6, '0')}.jpg`));
  }
}

/** Images/s of one pass of the training loader (shuffled, batched) over the dataset, best of `passes` epochs. */
async function loaderRate(data: ImageDataset): Promise<number> {
  let best = 0;
  for (let epoch = 0; epoch < passes; epoch++) {
    const loader = new DataLoader(data, { batchSize: batch, seed: 0 });
    let n = 0;
    const t0 = performance.now();
    for await (const { batches } of loader.steps(epoch)) {
      for await (const b of batches) {
        n += b.indices.length;
        disposeBatch(b);
      }
    }
    best = Math.max(best, n / ((performance.now() - t0) / 1000));
  }
  return best;
}

/** The Python side's rates; NaN where it cannot run (a GPU machine without Pillow). */
function python(jpegs: string, pack: string): { folder: number; pack: number; pil: string } {
  let env: NodeJS.ProcessEnv;
  try {
    env = pythonEnv();
  } catch {
    env = process.env;
  }
  const r = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'pack.py'), jpegs, pack, String(size), String(batch)], { env, encoding: 'utf8' });
  if (r.status === 0) return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { folder: number; pack: number; pil: string };
  console.error(`python side not measured: ${r.stderr.trim().split('\n').at(-1) ?? r.status}`);
  return { folder: NaN, pack: NaN, pil: 'n/a' };
}

void (async () => {
  const dir = tmpDir('extrema-bench-pack-');
  try {
    const jpegs = path.join(dir, 'jpegs');
    await makeJpegs(jpegs);
    const pack = path.join(dir, 'pack');
    const t0 = performance.now();
    await packDataset(openDataset(jpegs, { size }), pack);
    const packRate = count / ((performance.now() - t0) / 1000);
    const folderRate = packOnly ? NaN : await loaderRate(openDataset(jpegs, { size }));
    const packed = openDataset(pack, { size });
    const itemRate = await loaderRate({ ...packed, readInto: undefined });
    const packedRate = await loaderRate(packed);
    const py = packOnly ? { folder: NaN, pack: NaN, pil: 'not run' } : python(jpegs, pack);
    const cores = os.cpus().length;
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${cores}, node ${process.version}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4} (default 4), Pillow ${py.pil}; ${count} JPEGs 400 x 400 -> ${size} x ${size} x 3, batch ${batch}, best of ${passes} epochs`);
    // parts left out by BENCH_ONLY read as "not run", not NaN
    const rate = (r: number, perCore = false) => (Number.isNaN(r) ? 'not run' : `${r.toFixed(0)}${perCore ? ` (${(r / cores).toFixed(0)} per core)` : ''}`);
    const ratio = (r: number, digits: number) => (Number.isNaN(r) ? 'n/a' : `${r.toFixed(digits)}x`);
    console.log('| loader, images/s | extrema (TS) | Python (one process) | ratio TS/Python |');
    console.log('|---|---|---|---|');
    console.log(`| JPEG folder: decode + resize + crop each epoch | ${rate(folderRate, true)} | ${rate(py.folder)} (PIL) | ${ratio(folderRate / py.folder, 2)} |`);
    console.log(`| pack (\`extrema pack\`, once: ${packRate.toFixed(0)} images/s) | ${rate(packedRate, true)} | ${rate(py.pack)} (numpy) | ${ratio(packedRate / py.pack, 2)} |`);
    console.log(`| pack read item by item (no readInto) | ${rate(itemRate, true)} | | |`);
    console.log(`| pack / folder | ${ratio(packedRate / folderRate, 1)} | ${ratio(py.pack / py.folder, 1)} | |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();
