// extrema's inference kernels for attention and LayerNorm
// (lib/tensor/small-attention.ts, lib/tensor/row-layer-norm.ts) alone: the
// calls one forward pass of the demo encoder makes at `images` images (6
// self-attention blocks over 49 patch tokens and 2 class-attention blocks
// whose one query attends over 50; 17 LayerNorms, on 49-, 50- and 1-token
// rows of 192), timed as our kernels, as ATen's layers called from here, and
// as PyTorch's F.scaled_dot_product_attention and F.layer_norm from Python
// (bench/inference_kernels.py), in the same run. q, k and v are views of one
// fused qkv tensor, as nn.Attention makes them. Median time of one pass in
// each of 3 rounds that alternate between the two processes; the table has
// the median round.
//   node dist/bench/inference-kernels.js [--batches 1,4,16,64] [--threads 1] [--rounds 300]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as et from '../lib';
import { median, medianCallMs } from './timing';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

/** The demo encoder's calls at `images` images: attention as [queries, keys] per image (3 heads of 64), LayerNorm as tokens per image (width 192). */
function demoCalls(images: number): { attention: [number, number][]; layerNorm: number[]; images: number } {
  return {
    images,
    attention: [...Array<[number, number]>(6).fill([49, 49]), ...Array<[number, number]>(2).fill([1, 50])],
    layerNorm: [...Array<number>(12).fill(49), 50, 50, 1, 1, 1],
  };
}

function main(): void {
  const { values } = parseArgs({ options: { batches: { type: 'string', default: '1,4,16,64' }, threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '300' } } });
  if (!et.smallAttentionAvailable() || !et.rowLayerNormAvailable()) {
    console.log('extrema\'s inference kernels do not run on this CPU (no AVX-512): nothing to compare');
    return;
  }
  const threads = Number(values.threads);
  const rounds = Number(values.rounds);
  et.setNumThreads(threads);
  const dir = tmpDir('extrema-bench-inference-kernels-');
  const rows: string[] = [];
  let torchVersion = '';
  try {
    for (const images of values.batches.split(',').map(Number)) {
      const calls = demoCalls(images);
      et.manualSeed(0);
      const attention = calls.attention.map(([nq, nk]) => {
        // A fused [B, tokens, 3, heads, 64] projection, split into [B, heads, tokens, 64] views.
        const [q] = et.randn([images, nq, 3, 3, 64]).permute(2, 0, 3, 1, 4).unbind(0) as [et.Tensor];
        const [, k, v] = et.randn([images, nk, 3, 3, 64]).permute(2, 0, 3, 1, 4).unbind(0) as [et.Tensor, et.Tensor, et.Tensor];
        return { q: q.keep(), k: k.keep(), v: v.keep() };
      });
      const norms = calls.layerNorm.map((tokens) => ({ x: et.randn([images, tokens, 192]).keep(), w: et.randn([192]).keep(), b: et.randn([192]).keep() }));
      const specFile = path.join(dir, `calls-${images}.json`);
      fs.writeFileSync(specFile, JSON.stringify(calls));
      const samples: Record<string, number[]> = {};
      const add = (k: string, ms: number) => (samples[k] ??= []).push(ms);
      for (let round = 0; round < 3; round++) {
        et.inferenceMode(() => {
          add('attention', medianCallMs(() => et.scope(() => {
            for (const a of attention) et.smallAttention(a.q, a.k, a.v);
          }), rounds));
          add('sdpa', medianCallMs(() => et.scope(() => {
            for (const a of attention) et.scaledDotProductAttention(a.q, a.k, a.v);
          }), rounds));
          add('norm', medianCallMs(() => et.scope(() => {
            for (const n of norms) et.rowLayerNorm(n.x, n.w, n.b, 1e-6);
          }), rounds));
          add('layerNorm', medianCallMs(() => et.scope(() => {
            for (const n of norms) et.layerNorm(n.x, [192], n.w, n.b, 1e-6);
          }), rounds));
        });
        const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'inference_kernels.py'), specFile, String(threads), String(rounds)],
          { encoding: 'utf8', env: pythonEnv() });
        if (py.status !== 0) throw new Error(`bench/inference_kernels.py failed:\n${py.stderr}`);
        const out = JSON.parse(py.stdout.trim().split('\n').pop()!) as { sdpa: number; layer_norm: number; torch: string };
        torchVersion = out.torch;
        add('torchSdpa', out.sdpa);
        add('torchLayerNorm', out.layer_norm);
      }
      const m = (k: string) => median(samples[k]!);
      const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
      rows.push(`| ${images} | ${m('attention').toFixed(3)} | ${m('sdpa').toFixed(3)} | ${m('torchSdpa').toFixed(3)} | ${ratio(m('attention'), m('torchSdpa'))} `
        + `| ${m('norm').toFixed(3)} | ${m('layerNorm').toFixed(3)} | ${m('torchLayerNorm').toFixed(3)} | ${ratio(m('norm'), m('torchLayerNorm'))} |`);
      for (const t of [...attention.flatMap((a) => [a.q, a.k, a.v]), ...norms.flatMap((n) => [n.x, n.w, n.b])]) t.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}; torch ${torchVersion}; ${threads} thread(s); ${rounds} passes a round, median of 3 alternating rounds`);
  console.log('One pass of the demo encoder\'s 8 attention and 17 LayerNorm calls, in ms: extrema\'s kernels, ATen\'s layers called from here, PyTorch from Python.');
  console.log('| images | small_attention | ATen sdpa (ours) | PyTorch sdpa | small_attention / PyTorch | row_layer_norm | ATen layer_norm (ours) | PyTorch layer_norm | row_layer_norm / PyTorch |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main();
