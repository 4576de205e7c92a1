// The forward pass a lone request costs, without HTTP or threads: the
// teacher encoder from uint8 pixels to features, in process, on 1 compute
// thread, for three engines in the same run: extrema (the serving worker's
// path: packed Linear layers, inference mode; run eagerly and replayed from
// an operator trace, et.Trace, as the worker does), onnxruntime-node on the same
// weights exported by bench/serve_export.py, and PyTorch eager from Python
// (bench/serve_forward.py, the same module the export traces). extrema
// runs its default packed kernel and, for comparison, oneDNN's (where the
// default is the panels kernel). Rounds alternate between the engines; each
// prints the median time per call. A second table times each batch size's
// first pass, the recording of its trace, which the serving worker pays once
// per new size. A last section breaks extrema's batch-1 pass down by native operator
// (a child process that wraps the addon's op call before the library loads).
//   node dist/bench/serve-forward.js [--checkpoint FILE] [--threads 1] [--batches 1,16] [--rounds 3]
// Python needs torch, and onnx, onnxruntime and onnxscript for the export
// (looked for also in <repo>/.bench-py, like bench/serve.ts).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type * as Lib from '../lib';
import type { NativeBinding } from '../lib/native';
import { withEnv } from '../test/helpers/env';

const ROOT = path.resolve(__dirname, '..', '..');

/** Median of `iters` timed calls after a warm-up, in ms. */
async function medianMs(fn: () => unknown, iters: number): Promise<number> {
  for (let i = 0; i < Math.max(5, iters / 10); i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1]!;
}

function pixelsOf(n: number, item: number): Uint8Array {
  return Uint8Array.from({ length: n * item }, (_, i) => (i * 37 + 11) & 255);
}

interface ForwardOptions {
  /** The packed Linear kernel (default: defaultPackedKernel()). */
  kernel?: Lib.PackedKernel;
  /** EXTREMA_INFERENCE_KERNELS while this pass records and runs (default: as the environment says). */
  inferenceKernels?: 'extrema' | 'aten';
}

/** extrema's forward as the serving worker runs it: (pixels, n) to features, eagerly or replayed from its trace per batch size (the worker's TraceCache). */
function extremaForward(et: typeof Lib, checkpoint: string, options: ForwardOptions = {}): { run(pixels: Uint8Array, n: number): Float32Array; replay(pixels: Uint8Array, n: number): Float32Array; size: number; channels: number } {
  const { loadEncoder } = require('../lib/extrema/checkpoint') as typeof import('../lib/extrema/checkpoint');
  const { toNormalizedTensor, defaultNormalization } = require('../lib/data/preprocess') as typeof import('../lib/data/preprocess');
  const { TraceCache } = require('../lib/serve/trace-cache') as typeof import('../lib/serve/trace-cache');
  const { encoder, config } = loadEncoder(checkpoint, { device: 'cpu', which: 'teacher' });
  et.nn.packForInference(encoder, options.kernel === undefined ? {} : { kernel: options.kernel });
  const [size] = config.encoder.imgSize;
  const channels = config.encoder.inChans;
  const norm = defaultNormalization(channels);
  const input = (pixels: Uint8Array, n: number) => toNormalizedTensor(pixels, n, size!, size!, channels, norm.mean, norm.std, 'cpu');
  const forward = (x: Lib.Tensor) => encoder.encode(x).instance;
  const traces = new TraceCache(64);
  // The switch is read as layers run, so it decides what an eager pass runs and what a trace records.
  const kernels = <T>(fn: () => T): T => (options.inferenceKernels === undefined ? fn() : withEnv('EXTREMA_INFERENCE_KERNELS', options.inferenceKernels, fn));
  return {
    size: size!, channels,
    run: (pixels, n) => kernels(() => et.inferenceMode(() => et.scope(() => forward(input(pixels, n)).toTypedArray<'float32'>()))),
    replay: (pixels, n) => kernels(() => et.inferenceMode(() => et.scope(() => traces.run(n, input(pixels, n), forward).toTypedArray<'float32'>()))),
  };
}

/** The child process: extrema's batch-1 pass, time per native operator. */
function opsRole(checkpoint: string, threads: number, iters: number): void {
  const { native } = require('../lib/native') as { native: NativeBinding };
  const call = native.call;
  const stats = new Map<number, { n: number; ms: number }>();
  let counting = false;
  native.call = (op: number, ...args: unknown[]) => {
    if (!counting) return call(op, ...args);
    const t0 = performance.now();
    try {
      return call(op, ...args);
    } finally {
      const s = stats.get(op) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      stats.set(op, s);
    }
  };
  const et = require('../lib') as typeof Lib;
  et.setNumThreads(threads);
  const f = extremaForward(et, checkpoint);
  const pixels = pixelsOf(1, f.size * f.size * f.channels);
  for (let i = 0; i < 30; i++) f.run(pixels, 1);
  counting = true;
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) f.run(pixels, 1);
  const total = (performance.now() - t0) / iters;
  counting = false;
  const rows = [...stats].map(([op, s]) => ({ name: native.opSchema(op).split('(')[0]!, calls: s.n / iters, ms: s.ms / iters })).sort((a, b) => b.ms - a.ms);
  const inside = rows.reduce((sum, r) => sum + r.ms, 0);
  console.log(JSON.stringify({ total, inside, calls: rows.reduce((sum, r) => sum + r.calls, 0), rows }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      checkpoint: { type: 'string' }, threads: { type: 'string', default: '1' }, batches: { type: 'string', default: '1,16' },
      rounds: { type: 'string', default: '3' }, iters: { type: 'string', default: '300' }, role: { type: 'string' },
    },
  });
  const threads = Number(values.threads);
  const iters = Number(values.iters);
  if (values.role === 'ops') return opsRole(values.checkpoint!, threads, iters);

  const et = require('../lib') as typeof Lib;
  // Loaded here, not at the top: the ops role must wrap the addon before the library loads.
  const { tmpDir } = require('../test/helpers/oracle') as typeof import('../test/helpers/oracle');
  const { benchPythonEnv, demoCheckpoint } = require('./serve-setup') as typeof import('./serve-setup');
  const { median } = require('./timing') as typeof import('./timing');
  et.setNumThreads(threads);
  const batches = values.batches.split(',').map(Number);
  const rounds = Number(values.rounds);
  const dir = tmpDir('extrema-bench-serve-forward-');
  try {
    const checkpoint = values.checkpoint ?? demoCheckpoint(dir).file;
    const pyEnv = benchPythonEnv();
    const python = process.env.PYTHON || 'python3';

    const ours = extremaForward(et, checkpoint);
    // The same pass with oneDNN's packed product, where the default is the panels kernel.
    const onednn = et.defaultPackedKernel() !== 'onednn' && et.packedKernelAvailable('onednn') ? extremaForward(et, checkpoint, { kernel: 'onednn' }) : null;
    // The same pass with ATen's attention and LayerNorm, where extrema's inference kernels run (tensor/inference-kernels).
    const { smallAttentionAvailable } = require('../lib/tensor/small-attention') as typeof import('../lib/tensor/small-attention');
    const atenLayers = smallAttentionAvailable() ? extremaForward(et, checkpoint, { inferenceKernels: 'aten' }) : null;
    const item = ours.size * ours.size * ours.channels;
    const onnx = path.join(dir, 'model.onnx');
    const exported = spawnSync(python, [path.join(ROOT, 'bench', 'serve_export.py'), checkpoint, onnx, String(threads)], { env: pyEnv, encoding: 'utf8' });
    let session: import('onnxruntime-node').InferenceSession | null = null;
    const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
    if (exported.status === 0) {
      session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
    } else {
      console.log(`onnxruntime-node: skipped, the export failed:\n${exported.stderr}`);
    }

    // Same features from every engine before timing anything; the replay's are the eager pass's, bit for bit.
    {
      const px = pixelsOf(2, item);
      const want = ours.run(px, 2);
      ours.replay(px.slice().reverse(), 2); // records the batch-2 trace on other pixels
      if (!ours.replay(px, 2).every((v, i) => v === want[i])) throw new Error('the trace replay differs from the eager forward pass');
      if (onednn !== null) {
        const other = onednn.run(px, 2);
        console.log(`extrema with the ${et.defaultPackedKernel()} kernel vs oneDNN's on 2 images: max abs difference ${want.reduce((m, v, i) => Math.max(m, Math.abs(v - other[i]!)), 0).toExponential(1)}`);
      }
    }
    if (session !== null) {
      const px = pixelsOf(2, item);
      const want = ours.run(px, 2);
      const got = (await session.run({ pixels: new ort.Tensor('uint8', px, [2, ours.size, ours.size, ours.channels]) })).features!.data as Float32Array;
      const diff = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i]!)), 0);
      console.log(`extrema vs onnxruntime-node on 2 images: max abs difference ${diff.toExponential(1)}`);
    }

    // The serving worker's first batch of each size records its trace, so a new size costs one recording.
    const firsts = batches.filter((n) => n !== 2).map((n) => {
      const px = pixelsOf(n, item);
      const t0 = performance.now();
      ours.replay(px, n);
      const record = performance.now() - t0;
      const t1 = performance.now();
      ours.run(px, n);
      return { n, record, eager: performance.now() - t1 };
    });

    const results = new Map<number, { extrema: number[]; replay: number[]; onednn: number[]; aten: number[]; ort: number[]; torch: number[] }>();
    for (const n of batches) results.set(n, { extrema: [], replay: [], onednn: [], aten: [], ort: [], torch: [] });
    let torchVersion = '';
    for (let r = 0; r < rounds; r++) {
      for (const n of batches) {
        const k = Math.max(20, Math.round(iters / n));
        const px = pixelsOf(n, item);
        const res = results.get(n)!;
        res.extrema.push(await medianMs(() => ours.run(px, n), k));
        res.replay.push(await medianMs(() => ours.replay(px, n), k));
        if (onednn !== null) res.onednn.push(await medianMs(() => onednn.replay(px, n), k));
        if (atenLayers !== null) res.aten.push(await medianMs(() => atenLayers.replay(px, n), k));
        if (session !== null) {
          const input = new ort.Tensor('uint8', px, [n, ours.size, ours.size, ours.channels]);
          res.ort.push(await medianMs(() => session.run({ pixels: input }), k));
        }
        const py = spawnSync(python, [path.join(ROOT, 'bench', 'serve_forward.py'), checkpoint, String(threads), String(n), String(k)], { env: pyEnv, encoding: 'utf8' });
        if (py.status !== 0) throw new Error(`bench/serve_forward.py failed:\n${py.stderr}`);
        const out = JSON.parse(py.stdout.trim().split('\n').pop()!) as { ms: number; torch: string };
        torchVersion = out.torch;
        res.torch.push(out.ms);
      }
    }
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}; torch ${torchVersion}; `
      + `onnxruntime-node ${session === null ? 'skipped' : require('onnxruntime-node/package.json').version}; ${threads} thread(s); median of ${rounds} alternating rounds`);
    console.log(`extrema's Linear layers: the ${et.defaultPackedKernel()} kernel (the default); "oneDNN replayed" is the same replayed pass with oneDNN's packed product; `
      + '"ATen layers replayed" the same with ATen\'s attention and LayerNorm (EXTREMA_INFERENCE_KERNELS=aten)');
    console.log('| batch | extrema eager ms | extrema replayed ms | oneDNN replayed ms | ATen layers replayed ms | onnxruntime-node ms | PyTorch eager ms | eager / onnxruntime-node | replayed / onnxruntime-node | replayed / oneDNN replayed | replayed / ATen layers replayed | replayed / PyTorch |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    const cell = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(2));
    for (const n of batches) {
      const res = results.get(n)!;
      const med = (xs: number[]) => (xs.length > 0 ? median(xs) : NaN);
      const [e, r, d, a, o, t] = [med(res.extrema), med(res.replay), med(res.onednn), med(res.aten), med(res.ort), med(res.torch)];
      const vs = (x: number, y: number) => (Number.isNaN(y) ? '-' : (x / y).toFixed(2) + 'x');
      console.log(`| ${n} | ${cell(e)} | ${cell(r)} | ${cell(d)} | ${cell(a)} | ${cell(o)} | ${cell(t)} | ${vs(e, o)} | ${vs(r, o)} | ${vs(r, d)} | ${vs(r, a)} | ${vs(r, t)} |`);
    }

    console.log('\nA batch size\'s first pass (once each, before the rounds above): recording its trace, as the serving worker does, then one eager pass');
    console.log('| batch | recording ms | eager ms, next | recording / replayed (median above) |');
    console.log('|---|---|---|---|');
    for (const f of firsts) console.log(`| ${f.n} | ${f.record.toFixed(2)} | ${f.eager.toFixed(2)} | ${(f.record / median(results.get(f.n)!.replay)).toFixed(2)}x |`);

    const child = spawnSync(process.execPath, [__filename, '--role', 'ops', '--checkpoint', checkpoint, '--threads', String(threads), '--iters', String(iters)], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    if (child.status !== 0) throw new Error(`the operator breakdown failed:\n${child.stderr}`);
    const ops = JSON.parse(child.stdout.trim().split('\n').pop()!) as { total: number; inside: number; calls: number; rows: { name: string; calls: number; ms: number }[] };
    console.log(`\nextrema (eager) at batch 1, by native operator (a separate process, the op call wrapped in a timer): ${ops.total.toFixed(2)} ms a pass, `
      + `${ops.inside.toFixed(2)} ms inside ${ops.calls} operator calls, ${(ops.total - ops.inside).toFixed(2)} ms in JavaScript between them`);
    console.log('| operator | calls | ms |');
    console.log('|---|---|---|');
    for (const r of ops.rows.filter((x) => x.ms >= 0.02)) console.log(`| ${r.name} | ${r.calls} | ${r.ms.toFixed(3)} |`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
