// Per-op dispatch overhead, matmul throughput and tensor creation from
// TypedArrays, each as a ratio against the same operation through PyTorch in
// Python, measured in the same run on the same machine.
//   npm run bench            (after npm install; python3 needs torch + numpy)
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { formatSeconds, median } from './timing';
import { pythonEnv } from '../test/helpers/oracle';

function best(fn: (n: number) => void, iters: number, repeats = 5): number {
  fn(Math.max(1, Math.floor(iters / 10)));
  let min = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    fn(iters);
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e9 / iters);
  }
  return min;
}

const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
et.setNumThreads(threads);

const a = et.randn([4]).keep();
const b = et.randn([4]).keep();
const m1 = et.randn([1024, 1024]).keep();
const m2 = et.randn([1024, 1024]).keep();
const small = Float32Array.from({ length: 1024 }, Math.random);
const large = Float32Array.from({ length: 1 << 20 }, Math.random);

function measureOurs(): Record<string, number> {
  return {
  small_add: best((n) => {
    for (let i = 0; i < n; i++) a.add(b).dispose();
  }, 200000),
  inplace_add: best((n) => {
    const x = a.clone();
    for (let i = 0; i < n; i++) x.add_(b);
    x.dispose();
  }, 200000),
  chain12: best((n) => {
    for (let i = 0; i < n; i++) {
      et.scope(() => {
        a.add(b).mul(2).sub(1).exp().neg().abs().sqrt().add(a).tanh().mul(b).sigmoid().sum();
      });
    }
  }, 20000),
  matmul1024: best((n) => {
    for (let i = 0; i < n; i++) m1.matmul(m2).dispose();
  }, 20, 7),
  from_typed_1k: best((n) => {
    for (let i = 0; i < n; i++) et.fromTypedArray(small, [1024]).dispose();
  }, 100000),
  from_typed_1m: best((n) => {
    for (let i = 0; i < n; i++) et.fromTypedArray(large, [1 << 20]).dispose();
  }, 500),
  };
}

function measurePython(): { torch: string; results: Record<string, number> } {
  const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'tensor_ops.py'), String(threads)], {
  env: pythonEnv(),
  encoding: 'utf8',
});
  if (py.status !== 0) {
    console.error(py.stderr);
    process.exit(1);
  }
  return JSON.parse(py.stdout) as { torch: string; results: Record<string, number> };
}

// Alternate the two sides over several rounds and report the median ratio, so
// a burst of load on a shared machine does not decide the result.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const rounds: { ours: Record<string, number>; theirs: Record<string, number> }[] = [];
let torchVersion = '';
for (let r = 0; r < ROUNDS; r++) {
  const ours = measureOurs();
  const py = measurePython();
  torchVersion = py.torch;
  rounds.push({ ours, theirs: py.results });
}

const label: Record<string, string> = {
  small_add: 'add, 4 floats (new tensor)',
  inplace_add: 'add_ in place, 4 floats',
  chain12: '12-op chain, 4 floats',
  matmul1024: 'matmul 1024x1024 fp32',
  from_typed_1k: 'from TypedArray, 1k floats',
  from_typed_1m: 'from TypedArray, 1M floats',
};
const fmt = formatSeconds;
console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${torchVersion}, median of ${ROUNDS} alternating rounds`);
console.log('| operation | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
console.log('|---|---|---|---|');
for (const k of Object.keys(label)) {
  const o = median(rounds.map((r) => r.ours[k] as number));
  const t = median(rounds.map((r) => r.theirs[k] as number));
  let extra = '';
  if (k === 'matmul1024') extra = ` (${((2 * 1024 ** 3) / o / 1e9).toFixed(1)} vs ${((2 * 1024 ** 3) / t / 1e9).toFixed(1)} GFLOP/s)`;
  const ratio = median(rounds.map((r) => (r.ours[k] as number) / (r.theirs[k] as number)));
  console.log(`| ${label[k]} | ${fmt(o)} | ${fmt(t)} | ${ratio.toFixed(2)}x${extra} |`);
}
