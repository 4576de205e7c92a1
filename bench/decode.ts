// decodeImage on small PNGs: a folder of 28 x 28 Fashion-MNIST PNGs (sharp
// writes them here), decoded to one channel as an image-folder dataset reads
// them (8 files at a time), by decodeImage (its plain-PNG fast path,
// lib/io/png.ts) and by the sharp pipeline it otherwise runs, and by PIL from
// Python in the same run (bench/decode_png.py). Also one in-memory PNG,
// decoded over and over, as the serving worker does. Best of 3 rounds.
//   node dist/bench/decode.js   (BENCH_IMAGES, default 2,000)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeImage, rgbToGray } from '../lib/data/image-folder';
import { loadIdxImages } from '../lib/data/idx';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

const IDX = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
const count = Number(process.env.BENCH_IMAGES ?? 2000);

/** decodeImage's pipeline when the fast path does not apply. */
async function viaSharp(file: string | Uint8Array): Promise<Uint8Array> {
  const { data } = await sharp(file).flatten({ background: { r: 255, g: 255, b: 255 } }).toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  return rgbToGray(new Uint8Array(data.buffer, data.byteOffset, data.length));
}

async function rate(items: number, fn: (i: number) => Promise<unknown>, concurrency: number): Promise<number> {
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < items) await fn(next++);
    }));
    best = Math.max(best, items / ((performance.now() - t0) / 1000));
  }
  return best;
}

async function main(): Promise<void> {
  const dir = tmpDir('extrema-bench-decode-');
  try {
    const idx = loadIdxImages(IDX);
    const item = idx.height * idx.width;
    const files: string[] = [];
    for (let i = 0; i < count; i++) {
      const file = path.join(dir, `${String(i).padStart(5, '0')}.png`);
      await sharp(Buffer.from(idx.images.subarray((i % idx.count) * item, (i % idx.count + 1) * item)), { raw: { width: idx.width, height: idx.height, channels: 1 } }).png().toFile(file);
      files.push(file);
    }
    const one = fs.readFileSync(files[0]!);
    const ours = await rate(count, (i) => decodeImage(files[i]!, { channels: 1 }), 8);
    const theirs = await rate(count, (i) => viaSharp(files[i]!), 8);
    const oneOurs = await rate(count, () => decodeImage(one, { channels: 1 }), 1);
    const oneSharp = await rate(count, () => viaSharp(one), 1);
    const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'decode_png.py'), dir, '3'], { env: pythonEnv(), encoding: 'utf8' });
    const pil = py.status === 0 ? JSON.parse(py.stdout.trim().split('\n').pop()!) as { images_per_s: number; pil: string } : null;
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}; node ${process.version}; sharp ${sharp.versions.sharp}; ${pil === null ? 'PIL skipped (python3 lacks PIL or numpy)' : `PIL ${pil.pil}`}; ${count} 28x28 PNGs, to 1 channel, best of 3 rounds`);
    console.log('| what | decodeImage, images/s | sharp pipeline, images/s | PIL, images/s | decodeImage / sharp | decodeImage / PIL |');
    console.log('|---|---|---|---|---|---|');
    const vsPil = pil === null ? '-' : `${(ours / pil.images_per_s).toFixed(2)}x`;
    console.log(`| a folder, 8 files at a time | ${ours.toFixed(0)} | ${theirs.toFixed(0)} | ${pil === null ? '-' : pil.images_per_s.toFixed(0)} | ${(ours / theirs).toFixed(2)}x | ${vsPil} |`);
    console.log(`| one PNG in memory, one at a time | ${oneOurs.toFixed(0)} (${(1e6 / oneOurs).toFixed(0)} us each) | ${oneSharp.toFixed(0)} (${(1e6 / oneSharp).toFixed(0)} us each) | - | ${(oneOurs / oneSharp).toFixed(2)}x | - |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
