// The ExtreMA model's hot paths against the same model in PyTorch (the
// independent reference in test/oracle/extrema_ref.py), same weights, same
// masks, same inputs, same thread count, in the same run:
//  - one objective step: masked student forward + teacher forward + backward
//  - the EMA teacher update, fused (one multi-tensor native call) and as a loop
//  - teacher inference (what `extrema embed` runs)
//   node dist/bench/extrema-model.js   (BENCH_PRESET=cpu|vit-s, BENCH_ROUNDS)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { bestPerCall, formatSeconds, median } from './timing';
import { ExtremaModel, type ExtremaConfigInput } from '../lib/extrema';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

interface Setup { config: ExtremaConfigInput; batch: number; embedBatch: number; stepIters: number; embedIters: number }

// 'cpu' is issue 4's small CPU recipe (Fashion-MNIST 28 px); 'vit-s' a ViT-S/16 at 224 with a small batch.
const PRESETS: Record<string, Setup> = {
  cpu: {
    config: { encoder: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 192, depth: 6, numHeads: 3, classAttentionLayers: 2 }, projectorHiddenDim: 1024, projectorDim: 256, predictorHiddenDim: 1024, maskRatio: 0.8, numMasks: 2 },
    batch: 64, embedBatch: 256, stepIters: 5, embedIters: 3,
  },
  'vit-s': {
    config: { encoder: { preset: 'small', imgSize: 224, patchSize: 16 }, maskRatio: 0.8, numMasks: 2 },
    batch: 8, embedBatch: 8, stepIters: 2, embedIters: 2,
  },
};

const presetName = process.env.BENCH_PRESET ?? 'cpu';
const setup = PRESETS[presetName];
if (setup === undefined) throw new Error(`Unknown BENCH_PRESET "${presetName}"; use ${Object.keys(PRESETS).join(' or ')}`);
const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
et.setNumThreads(threads);


const g = et.Generator.create(0);
const model = new ExtremaModel(setup.config, { seed: 0 });
const enc = model.config.encoder;
const shape = (b: number) => [b, enc.inChans, enc.imgSize[0], enc.imgSize[1]];
const student = et.randn(shape(setup.batch), { generator: g }).keep();
const teacher = et.randn(shape(setup.batch), { generator: g }).keep();
const embedImages = et.randn(shape(setup.embedBatch), { generator: g }).keep();
const visible = model.sampleMasks(setup.batch, g).keep();
const teacherParams = model.momentum_encoder.parameters();
const studentParams = model.base_encoder.parameters();

function measureOurs(): Record<string, number> {
  return {
    step: bestPerCall(() => et.scope(() => {
      model.forward(student, teacher, { visible }).loss.backward();
      model.zeroGrad();
    }), setup.stepIters),
    ema_fused: bestPerCall(() => et.emaUpdate(teacherParams, studentParams, 0.996, { fused: true }), 50),
    ema_loop: bestPerCall(() => et.emaUpdate(teacherParams, studentParams, 0.996, { fused: false }), 50),
    embed: bestPerCall(() => et.scope(() => void model.encode(embedImages)), setup.embedIters),
  };
}

const dir = tmpDir('extrema-bench-');
const inputs = path.join(dir, 'inputs.safetensors');
const specFile = path.join(dir, 'spec.json');
et.saveSafetensors(inputs, { ...Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v])), student, teacher, visible, embed: embedImages });
fs.writeFileSync(specFile, JSON.stringify({ config: model.config, threads, step_iters: setup.stepIters, embed_iters: setup.embedIters }));

function measurePython(): { torch: string; results: Record<string, number> } {
  const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'extrema_model.py'), specFile, inputs], { env: pythonEnv(), encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`python side failed:\n${py.stderr}`);
  return JSON.parse(py.stdout) as { torch: string; results: Record<string, number> };
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const rounds: { ours: Record<string, number>; theirs: Record<string, number> }[] = [];
let torchVersion = '';
try {
  for (let r = 0; r < ROUNDS; r++) {
    const ours = measureOurs();
    const py = measurePython();
    torchVersion = py.torch;
    rounds.push({ ours, theirs: py.results });
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const label: Record<string, string> = {
  step: `objective step fwd+bwd (batch ${setup.batch}, ${model.config.maskRatio * 100}% x ${model.config.numMasks})`,
  ema_fused: `EMA update, fused (${teacherParams.length} tensors, ${(model.momentum_encoder.numParameters() / 1e6).toFixed(1)}M params)`,
  ema_loop: 'EMA update, per-tensor loop',
  embed: `teacher inference (batch ${setup.embedBatch})`,
};
const fmt = formatSeconds;
console.log(`preset ${presetName}: ${JSON.stringify(setup.config.encoder)}`);
console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, torch ${torchVersion}, median of ${ROUNDS} alternating rounds`);
console.log('| operation | extrema (TS) | PyTorch (Python) | ratio TS/Python |');
console.log('|---|---|---|---|');
for (const k of Object.keys(label)) {
  const o = median(rounds.map((r) => r.ours[k] as number));
  const t = median(rounds.map((r) => r.theirs[k] as number));
  const ratio = median(rounds.map((r) => (r.ours[k] as number) / (r.theirs[k] as number)));
  console.log(`| ${label[k]} | ${fmt(o)} | ${fmt(t)} | ${ratio.toFixed(2)}x |`);
}
model.dispose();
