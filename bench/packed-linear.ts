// The packed inference Linear layers (lib/tensor/packed-linear.ts) alone: one
// pass over the demo encoder's 37 Linear layers in their forward order (6
// blocks of qkv, proj, fc1 + GELU, fc2 on 49 tokens an image; 2
// class-attention blocks whose q, proj and MLP see one token an image; the
// patch embedding as a product), each layer with its own weights, so they
// come from cache as in a real pass, not hot from the layer before. Ours:
// the panels kernel, oneDNN's packed product and ATen's linear; PyTorch's
// F.linear and oneDNN's packed product from Python, in the same run
// (bench/packed_linear.py). Median time of one pass in each of 3 rounds that
// alternate between the two processes; the table has the median round.
//   node dist/bench/packed-linear.js [--batches 1,4,16,64] [--threads 1] [--rounds 200]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as et from '../lib';
import { median, medianCallMs } from './timing';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

/** [rows, in, out, gelu] of each Linear layer of the demo encoder's forward pass at `images` images. */
function demoLayers(images: number): [number, number, number, boolean][] {
  const tokens = 49 * images;
  const layers: [number, number, number, boolean][] = [[tokens, 16, 192, false]]; // patch embedding, 4 x 4 x 1 patches
  for (let b = 0; b < 6; b++) layers.push([tokens, 192, 576, false], [tokens, 192, 192, false], [tokens, 192, 768, true], [tokens, 768, 192, false]);
  for (let b = 0; b < 2; b++) {
    layers.push([images, 192, 192, false], [tokens + images, 192, 192, false], [tokens + images, 192, 192, false]);
    layers.push([images, 192, 192, false], [images, 192, 768, true], [images, 768, 192, false]);
  }
  return layers;
}

function main(): void {
  const { values } = parseArgs({ options: { batches: { type: 'string', default: '1,4,16,64' }, threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '200' } } });
  const threads = Number(values.threads);
  const rounds = Number(values.rounds);
  et.setNumThreads(threads);
  const kernels = et.PACKED_KERNELS.filter(et.packedKernelAvailable);
  const dir = tmpDir('extrema-bench-packed-linear-');
  const rows: string[] = [];
  let torchVersion = '';
  try {
    for (const images of values.batches.split(',').map(Number)) {
      const spec = demoLayers(images);
      et.manualSeed(0);
      const layers = spec.map(([m, k, n, gelu]) => {
        const x = et.randn([m, k]).keep();
        const w = et.randn([n, k]).mul(0.05).keep();
        const b = et.randn([n]).keep();
        const packed = new Map(kernels.map((kernel) => [kernel, et.packLinearWeight(w, { kernel }).keep()]));
        return { x, w, b, gelu, packed };
      });
      const specFile = path.join(dir, `layers-${images}.json`);
      fs.writeFileSync(specFile, JSON.stringify(spec));
      const samples: Record<string, number[]> = {};
      const add = (k: string, ms: number) => (samples[k] ??= []).push(ms);
      for (let round = 0; round < 3; round++) {
        et.inferenceMode(() => {
          for (const kernel of kernels) {
            add(kernel, medianCallMs(() => et.scope(() => {
              for (const l of layers) et.packedLinear(l.x, l.packed.get(kernel)!, l.b, l.gelu ? 'gelu' : 'none');
            }), rounds));
          }
          add('aten', medianCallMs(() => et.scope(() => {
            for (const l of layers) {
              const y = et.linear(l.x, l.w, l.b);
              if (l.gelu) et.gelu(y);
            }
          }), rounds));
        });
        const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'packed_linear.py'), specFile, String(threads), String(rounds)], { env: pythonEnv(), encoding: 'utf8' });
        if (py.status !== 0) throw new Error(`bench/packed_linear.py failed:\n${py.stderr}`);
        const theirs = JSON.parse(py.stdout.trim().split('\n').pop()!) as { linear: number; mkldnn: number; torch: string };
        torchVersion = theirs.torch;
        add('torchLinear', theirs.linear);
        add('torchMkldnn', theirs.mkldnn);
      }
      for (const l of layers) for (const t of [l.x, l.w, l.b, ...l.packed.values()]) t.dispose();
      const ours: Record<string, number> = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
      const theirs = { linear: ours.torchLinear!, mkldnn: ours.torchMkldnn! };
      const cell = (k: string) => (ours[k] === undefined ? '-' : ours[k]!.toFixed(3));
      const chosen = ours[et.defaultPackedKernel() ?? 'aten']!;
      rows.push(`| ${images} | ${cell('panels')} | ${cell('onednn')} | ${cell('aten')} | ${theirs.linear.toFixed(3)} | ${theirs.mkldnn.toFixed(3)} | ${(chosen / theirs.linear).toFixed(2)}x | ${(chosen / theirs.mkldnn).toFixed(2)}x |`);
      console.log(rows.at(-1));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nmachine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}; torch ${torchVersion}; ${threads} thread(s); median of ${rounds} passes a round, median of 3 alternating rounds`);
  console.log(`one pass over the demo encoder's 37 Linear layers, ms; the default kernel here: ${et.defaultPackedKernel() ?? 'none (ATen linear)'}`);
  console.log('| images | panels | oneDNN (ours) | ATen linear (ours) | PyTorch F.linear | PyTorch oneDNN packed | default / F.linear | default / PyTorch oneDNN |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main();
