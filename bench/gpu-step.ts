// The paper's regime on one GPU (issue 10): an ExtreMA pretraining step of
// ViT-B/16 (then ViT-S/16) at 224 px, 80% x 2 masks, bf16 autocast, batch 128
// and 256 — masked student forward, full-view teacher forward, backward, fused
// AdamW, EMA — against the same model in PyTorch eager (the independent
// reference in test/oracle/extrema_ref.py, with fused attention), in the same
// run on the same card. Inputs are random tensors already on the device:
// augmentation and loading are measured elsewhere.
//
// Reported per side: step time, images/s, peak allocated memory, host time to
// issue one step (where it reaches the step time, the GPU waits on the host),
// model FLOPs utilisation, and a breakdown (forward, forward + backward,
// optimizer step, zero_grad, EMA), each timed between device syncs.
//
// FLOPs are counted from the shapes (bench/model-flops.ts): 2 per multiply-add of
// every linear/conv/attention matmul, backward = 2 x forward for the student,
// teacher forward only. Elementwise ops, norms, softmax and the optimizer are
// not counted, so MFU is a lower bound on the work actually done.
//   node dist/bench/gpu-step.js   (BENCH_DEVICE=cuda, BENCH_MODELS=base,small,
//   BENCH_BATCHES=128,256, BENCH_STEPS=10, BENCH_PEAK_TFLOPS, BENCH_OUT=<json>,
//   BENCH_GRAPH=1 adds the step captured in a CUDA graph)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../lib';
import { ExtremaModel, type ExtremaConfig, type ExtremaConfigInput } from '../lib/extrema';
import { bestPerCall } from './timing';
import { modelFlops } from './model-flops';
import { pythonEnv } from '../test/helpers/oracle';
import { DeviceGraph } from '../lib/runtime/graph';

const device = process.env.BENCH_DEVICE ?? 'cuda';
const models = (process.env.BENCH_MODELS ?? 'base,small').split(',');
const batches = (process.env.BENCH_BATCHES ?? '128,256').split(',').map(Number);
const steps = Number(process.env.BENCH_STEPS ?? 10);

/** 'tiny' only smoke-tests this script on a CPU. */
const ENCODERS: Record<string, ExtremaConfigInput['encoder']> = {
  base: { preset: 'base', imgSize: 224, patchSize: 16 },
  small: { preset: 'small', imgSize: 224, patchSize: 16 },
  tiny: { imgSize: 32, patchSize: 8, embedDim: 64, depth: 2, numHeads: 2 },
};

export interface Timings {
  step: number; hostIssue: number; forward: number; forwardBackward: number; optimizer: number; zeroGrad: number; ema: number; peakBytes: number;
}

/** The model, random views already on the device, and its AdamW: what both timings start from. */
function setUp(encoder: ExtremaConfigInput['encoder'], b: number) {
  const model = new ExtremaModel({ encoder, maskRatio: 0.8, numMasks: 2 }, { seed: 0 }).to({ device });
  const g = et.Generator.create(0, device);
  const e = model.config.encoder;
  const shape = [b, e.inChans, e.imgSize[0], e.imgSize[1]];
  const student = et.randn(shape, { generator: g, device }).keep();
  const teacher = et.randn(shape, { generator: g, device }).keep();
  const opt = new et.AdamW(et.paramGroupsForDecay(model.studentParameters(), { weightDecay: 0.05 }), { lr: 1.5e-4, betas: [0.9, 0.95], weightDecay: 0.05 });
  return { model, g, student, teacher, opt };
}

function ours(encoder: ExtremaConfigInput['encoder'], b: number): { t: Timings; config: ExtremaConfig } {
  const { model, g, student, teacher, opt } = setUp(encoder, b);
  const sync = () => et.synchronize(device);
  const forward = () => et.autocast(device, 'bfloat16', () => model.forward(student, teacher, { generator: g }).loss);
  const step = () => {
    et.scope(() => forward().backward());
    opt.step();
    model.zeroGrad();
    model.updateTeacher(0.996);
  };
  for (let i = 0; i < 3; i++) step();
  sync();
  if (device.startsWith('cuda')) et.cuda.resetPeakMemoryStats(device);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const hostIssue = (performance.now() - t0) / 1000 / steps;
  sync();
  const stepTime = (performance.now() - t0) / 1000 / steps;
  const peakBytes = device.startsWith('cuda') ? et.cuda.memoryStats(device).allocatedBytes.peak : NaN;
  const t: Timings = {
    step: stepTime, hostIssue, peakBytes,
    forward: bestPerCall(() => et.scope(() => void forward()), steps, 2, sync),
    forwardBackward: bestPerCall(() => { et.scope(() => forward().backward()); model.zeroGrad(); }, steps, 2, sync),
    optimizer: 0, zeroGrad: 0, ema: 0,
  };
  et.scope(() => forward().backward()); // gradients for the optimizer and zero_grad timings
  t.optimizer = bestPerCall(() => opt.step(), steps, 2, sync);
  const grads = model.studentParameters().map(([, p]) => p.grad);
  t.zeroGrad = bestPerCall(() => {
    model.studentParameters().forEach(([, p], i) => { p.grad = grads[i] ?? null; });
    model.zeroGrad();
  }, steps, 2, sync);
  t.ema = bestPerCall(() => model.updateTeacher(0.996), steps, 2, sync);
  const config = model.config;
  for (const x of grads) x?.dispose();
  student.dispose();
  teacher.dispose();
  opt.dispose?.();
  model.dispose();
  if (device.startsWith('cuda')) et.cuda.emptyCache(device);
  return { t, config };
}

/**
 * The same step captured in a device graph (BENCH_GRAPH=1; what --cuda-graph
 * does in training): lr and momentum in device scalars, masks from the
 * default generator, 3 warm-up steps on the graph's stream, then replays.
 * Returns the step time and host time per replay, or the capture's error.
 */
function oursGraphed(encoder: ExtremaConfigInput['encoder'], b: number): { step: number; hostIssue: number; peakBytes: number } | { error: string } {
  const { model, student, teacher, opt } = setUp(encoder, b);
  opt.useDeviceLr();
  const momentum = et.tensor([0.996], { dtype: 'float32' }).reshape([]).to(device).keep();
  const masks = et.Generator.default(device);
  const step = () => et.scope(() => {
    const loss = et.autocast(device, 'bfloat16', () => model.forward(student, teacher, { generator: masks }).loss);
    loss.backward();
    opt.step();
    model.zeroGrad();
    model.updateTeacher(momentum);
    return loss.detach();
  });
  const graph = new DeviceGraph(device);
  try {
    for (let i = 0; i < 3; i++) graph.warmUp(step).dispose();
    const loss = graph.capture(step).keep();
    et.synchronize(device);
    et.cuda.resetPeakMemoryStats(device);
    graph.replay();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) graph.replay();
    const hostIssue = (performance.now() - t0) / 1000 / steps;
    et.synchronize(device);
    const seconds = (performance.now() - t0) / 1000 / steps;
    const finite = Number.isFinite(loss.item());
    loss.dispose();
    if (!finite) return { error: 'the replayed loss is not finite' };
    return { step: seconds, hostIssue, peakBytes: et.cuda.memoryStats(device).allocatedBytes.peak };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0]! };
  } finally {
    graph.dispose();
    student.dispose();
    teacher.dispose();
    momentum.dispose();
    opt.dispose();
    model.dispose();
    et.cuda.emptyCache(device);
  }
}

function theirs(config: ExtremaConfig, b: number): { t: Timings; torch: string; gpu: string } {
  const r = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'gpu_step.py'), JSON.stringify({ config, batch: b, steps, device })], { env: pythonEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python side failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { t: Timings; torch: string; gpu: string };
}

const ms = (s: number) => `${(s * 1e3).toFixed(2)} ms`;
const gib = (b: number) => (Number.isFinite(b) ? `${(b / 2 ** 30).toFixed(1)} GiB` : 'n/a');

void (async () => {
  const rows: unknown[] = [];
  let header = false;
  for (const name of models) {
    const encoder = ENCODERS[name];
    if (encoder === undefined) throw new Error(`Unknown model "${name}" in BENCH_MODELS; use ${Object.keys(ENCODERS).join(', ')}`);
    for (const b of batches) {
      const mine = ours(encoder, b);
      const py = theirs(mine.config, b);
      const flops = modelFlops(mine.config, b);
      const peak = Number(process.env.BENCH_PEAK_TFLOPS ?? (/H100|H200/.test(py.gpu) ? 989 : NaN)) * 1e12;
      if (!header) {
        console.log(`device: ${py.gpu}; torch ${py.torch}; node ${process.version}; ${steps} timed steps after 3 warm-up; bf16 autocast; MFU against ${peak / 1e12} TFLOP/s dense bf16`);
        console.log('| model, batch | side | step | images/s | MFU | peak mem | host issue | forward | fwd+bwd | AdamW | zero_grad | EMA |');
        console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
        header = true;
      }
      for (const [side, t] of [['extrema', mine.t], ['PyTorch', py.t]] as const) {
        console.log(`| ${name} ${mine.config.encoder.patchSize}/${mine.config.encoder.imgSize[0]}, ${b} | ${side} | ${ms(t.step)} | ${(b / t.step).toFixed(0)} | ${((flops / t.step / peak) * 100).toFixed(1)}% | ${gib(t.peakBytes)} | ${ms(t.hostIssue)} | ${ms(t.forward)} | ${ms(t.forwardBackward)} | ${ms(t.optimizer)} | ${ms(t.zeroGrad)} | ${ms(t.ema)} |`);
      }
      console.log(`| | ratio extrema/PyTorch | ${(mine.t.step / py.t.step).toFixed(2)}x | | | | | ${(mine.t.forward / py.t.forward).toFixed(2)}x | ${(mine.t.forwardBackward / py.t.forwardBackward).toFixed(2)}x | ${(mine.t.optimizer / py.t.optimizer).toFixed(2)}x | | |`);
      const graphed = process.env.BENCH_GRAPH === '1' ? oursGraphed(encoder, b) : null;
      if (graphed !== null && 'error' in graphed) console.log(`| | extrema, CUDA graph | capture failed: ${graphed.error} | | | | | | | | | |`);
      else if (graphed !== null) {
        console.log(`| | extrema, CUDA graph | ${ms(graphed.step)} | ${(b / graphed.step).toFixed(0)} | ${((flops / graphed.step / peak) * 100).toFixed(1)}% | ${gib(graphed.peakBytes)} | ${ms(graphed.hostIssue)} | | | | | |`);
        console.log(`| | ratio graph/PyTorch | ${(graphed.step / py.t.step).toFixed(2)}x | | | | | | | | | |`);
      }
      rows.push({ model: name, batch: b, flopsPerStep: flops, peakFlops: peak, extrema: mine.t, pytorch: py.t, graphed, torch: py.torch, gpu: py.gpu });
    }
  }
  if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, JSON.stringify({ date: new Date().toISOString(), node: process.version, steps, rows }, null, 1));
})();
