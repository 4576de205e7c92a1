// One fine-tuning step of `extrema finetune` with the 'fmnist-cpu' preset's
// classifier (28 px, 1 channel, patch 4, width 192, depth 6, 3 heads, drop
// path 0.1, 10 classes, batch 256) against the same step of timm's
// VisionTransformer(global_pool='avg', class_token=False, fc_norm=True) in
// PyTorch (bench/finetune_step.py), same weights, inputs and thread count, in
// the same run. The step is what lib/train/finetune.ts does per batch past the
// data path: forward in train mode (drop path live), soft-target
// cross-entropy, backward, AdamW over the layer-decay groups, zero grad.
// Augmentation and mixing are left out: the inputs are fixed random
// normalised images and fixed random soft targets (timm's would run on PIL
// images in data-loader workers, so there is no like-for-like to time).
//   node dist/bench/finetune-step.js   (BENCH_ROUNDS, BENCH_STEPS, BENCH_THREADS)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';
import { bestPerCall, median } from './timing';
import { finetuneConfig } from '../lib/train/finetune-config';
import { VitClassifier } from '../lib/nn/vit-classifier';
import { layerDecayParamGroups } from '../lib/optim/layer-decay';
import { softTargetCrossEntropy } from '../lib/data/mixup';
import { pythonEnv, tmpDir } from '../test/helpers/oracle';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// Timed steps per round (after one warm-up step); a round reports its fastest.
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const threads = Number(process.env.BENCH_THREADS ?? et.getNumThreads());
et.setNumThreads(threads);

const NUM_CLASSES = 10;
const cfg = finetuneConfig({ preset: 'fmnist-cpu' });
if (cfg.encoder === undefined) throw new Error('The fmnist-cpu preset lost its encoder fields');
const model = new VitClassifier({ encoder: et.nn.vitConfig(cfg.encoder), numClasses: NUM_CLASSES, dropPathRate: cfg.dropPath }, { seed: 0 }).train();
const enc = model.config.encoder;
const batch = cfg.batchSize;
const lr = et.scaledLr(cfg.baseLr, batch * cfg.accumulate);
const groups = layerDecayParamGroups(model, { weightDecay: cfg.weightDecay, layerDecay: cfg.layerDecay });
const optimizer = new et.AdamW(groups, { lr, betas: cfg.betas, weightDecay: cfg.weightDecay });

const g = et.Generator.create(0);
const images = et.randn([batch, enc.inChans, enc.imgSize[0], enc.imgSize[1]], { generator: g }).keep();
// Soft targets as mixup with label smoothing makes them: rows on the simplex, most mass on a few classes.
const targets = et.scope(() => et.randn([batch, NUM_CLASSES], { generator: g }).mul(3).softmax(-1)).keep();

function measureOurs(): number {
  return bestPerCall(() => {
    et.scope(() => {
      const loss = softTargetCrossEntropy(model.forward(images), targets);
      loss.backward();
      loss.item(); // as the fine-tuning loop, which reads every step's loss
    });
    optimizer.step();
    optimizer.zeroGrad();
  }, 1, STEPS);
}

const dir = tmpDir('extrema-bench-');
const inputs = path.join(dir, 'inputs.safetensors');
const specFile = path.join(dir, 'spec.json');
// Saved before any step, so both sides start from the same weights.
et.saveSafetensors(inputs, { ...Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v])), images, targets });
fs.writeFileSync(specFile, JSON.stringify({
  threads, repeats: STEPS, lr, betas: cfg.betas, weight_decay: cfg.weightDecay,
  model: {
    img_size: enc.imgSize[0], patch_size: enc.patchSize, in_chans: enc.inChans, num_classes: NUM_CLASSES, embed_dim: enc.embedDim,
    depth: enc.depth, num_heads: enc.numHeads, mlp_ratio: enc.mlpRatio, qkv_bias: enc.qkvBias, drop_path_rate: cfg.dropPath,
  },
  groups: optimizer.groups.map((gr) => ({ names: gr.names, lr_scale: gr.lrScale, weight_decay: gr.weightDecay })),
}));

function measurePython(): { torch: string; timm: string; step: number } {
  const py = spawnSync(process.env.PYTHON || 'python3', [path.join(__dirname, '..', '..', 'bench', 'finetune_step.py'), specFile, inputs], { env: pythonEnv(), encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`python side failed:\n${py.stderr}`);
  return JSON.parse(py.stdout.trim().split('\n').at(-1) as string) as { torch: string; timm: string; step: number };
}

const rounds: { ours: number; theirs: number }[] = [];
let versions = '';
try {
  for (let r = 0; r < ROUNDS; r++) {
    const ours = measureOurs();
    const py = measurePython();
    versions = `torch ${py.torch}, timm ${py.timm}`;
    rounds.push({ ours, theirs: py.step });
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const ours = median(rounds.map((r) => r.ours));
const theirs = median(rounds.map((r) => r.theirs));
const ratio = median(rounds.map((r) => r.ours / r.theirs));
const cell = (s: number) => `${(s * 1000).toFixed(0)} ms (${(batch / s).toFixed(0)} images/s)`;
console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, threads ${threads}, node ${process.version}, ${versions}; per round the fastest of ${STEPS} steps after one warm-up, median of ${ROUNDS} alternating rounds`);
console.log(`| fine-tuning step, batch ${batch} (fmnist-cpu classifier; no augmentation: fixed random images and soft targets) | extrema (TS) | PyTorch + timm (Python) | ratio TS/Python |`);
console.log('|---|---|---|---|');
console.log(`| forward + soft-target CE + backward + AdamW (${optimizer.groups.length} layer-decay groups) + zero grad | ${cell(ours)} | ${cell(theirs)} | ${ratio.toFixed(2)}x |`);
optimizer.dispose();
model.dispose();
images.dispose();
targets.dispose();
