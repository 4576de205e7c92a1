// AdamW step time, our fused and foreach paths against torch.optim.AdamW
// (fused=True and foreach=True) on the same parameter shapes: a ViT-like list
// of ~120 tensors / ~5M parameters split into decay and no-decay groups, as
// the pretraining loop builds it. Gradients stay set, so only step() is timed.
//   node dist/bench/adamw.js   (BENCH_DEPTH, BENCH_WIDTH, BENCH_ROUNDS, BENCH_THREADS, BENCH_DEVICE)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { bestPerCall, median } from './timing';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

const depth = Number(process.env.BENCH_DEPTH ?? 10);
const width = Number(process.env.BENCH_WIDTH ?? 192);
const device = process.env.BENCH_DEVICE ?? 'cpu';
const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
const ITERS = Number(process.env.BENCH_ITERS ?? 20);
et.setNumThreads(threads);

// patch embedding, class token, then pre-norm blocks (12 tensors each)
function vitShapes(d: number, blocks: number): [string, number[]][] {
  const out: [string, number[]][] = [['patch_embed.proj.weight', [d, 3, 16, 16]], ['patch_embed.proj.bias', [d]], ['cls_token', [1, 1, d]], ['norm.weight', [d]]];
  for (let i = 0; i < blocks; i++) {
    const b = `blocks.${i}`;
    out.push([`${b}.norm1.weight`, [d]], [`${b}.norm1.bias`, [d]], [`${b}.attn.qkv.weight`, [3 * d, d]], [`${b}.attn.qkv.bias`, [3 * d]],
      [`${b}.attn.proj.weight`, [d, d]], [`${b}.attn.proj.bias`, [d]], [`${b}.norm2.weight`, [d]], [`${b}.norm2.bias`, [d]],
      [`${b}.mlp.fc1.weight`, [4 * d, d]], [`${b}.mlp.fc1.bias`, [4 * d]], [`${b}.mlp.fc2.weight`, [d, 4 * d]], [`${b}.mlp.fc2.bias`, [d]]);
  }
  return out;
}

const shapes = vitShapes(width, depth);
const numel = shapes.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);

const best = (fn: () => void, iters: number) => bestPerCall(fn, iters, 3, () => {
  if (device !== 'cpu') et.synchronize(device);
});

function measureOurs(fused: boolean): number {
  const g = et.Generator.create(0);
  const named: [string, et.Tensor][] = shapes.map(([n, s]) => [n, et.randn(s, { generator: g }).to(device).requiresGrad_(true).keep()]);
  for (const [, p] of named) p.grad = et.randn(p.shape, { generator: g }).to(device);
  const opt = new et.AdamW(et.paramGroupsForDecay(named, { weightDecay: 0.05 }), { lr: 1e-4, betas: [0.9, 0.95], fused });
  const s = best(() => opt.step(), ITERS);
  opt.dispose();
  for (const [, p] of named) p.dispose();
  return s;
}

const dir = tmpDir('extrema-bench-');
const specFile = path.join(dir, 'spec.json');
fs.writeFileSync(specFile, JSON.stringify({ shapes, threads, iters: ITERS, device }));

function measurePython(): { torch: string; results: Record<string, number> } {
  const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'adamw.py'), specFile], { env: pythonEnv(), encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`python side failed:\n${py.stderr}`);
  return JSON.parse(py.stdout) as { torch: string; results: Record<string, number> };
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const rounds: Record<string, number>[] = [];
let torchVersion = '';
try {
  for (let r = 0; r < ROUNDS; r++) {
    const py = measurePython();
    torchVersion = py.torch;
    rounds.push({ ours_fused: measureOurs(true), ours_foreach: measureOurs(false), ...py.results });
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const fmt = (s: number) => `${(s * 1e3).toFixed(2)} ms`;
console.log(`AdamW step, ${shapes.length} tensors, ${(numel / 1e6).toFixed(2)}M params (ViT width ${width}, ${depth} blocks), decay + no-decay groups, ${device}`);
console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${torchVersion}, median of ${ROUNDS} rounds (best of 3 x ${ITERS} steps each)`);
console.log('| implementation | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
console.log('|---|---|---|---|');
for (const k of ['fused', 'foreach']) {
  const o = median(rounds.map((r) => r[`ours_${k}`] as number));
  const t = median(rounds.map((r) => r[`torch_${k}`] as number));
  const ratio = median(rounds.map((r) => (r[`ours_${k}`] as number) / (r[`torch_${k}`] as number)));
  console.log(`| ${k} | ${fmt(o)} | ${fmt(t)} | ${ratio.toFixed(2)}x |`);
}
const fusedOverForeach = median(rounds.map((r) => (r.ours_fused as number) / (r.ours_foreach as number)));
console.log(`extrema fused / foreach: ${fusedOverForeach.toFixed(2)}x`);
