// `extrema finetune`: every recipe field of lib/train/finetune-config.ts has
// one flag, generated from the schema with the names below; the run flags
// and the preset < file < flags order come from ./recipe-command.
import type { Command } from 'commander';
import { finetune } from '../train/finetune';
import { FINETUNE_PRESETS, DEFAULT_FINETUNE_PRESET, finetuneSchema, finetuneConfig, type FinetuneConfigInput } from '../train/finetune-config';
import type { FlagSpec } from '../config';
import { addRecipeCommand, epochProgress, percent } from './recipe-command';

export const FINETUNE_FLAGS: readonly FlagSpec[] = [
  { flags: '--train <path>', path: 'train' },
  { flags: '--test <path>', path: 'test' },
  { flags: '--train-limit <n>', path: 'trainLimit' },
  { flags: '--test-limit <n>', path: 'testLimit' },
  { flags: '--label-fraction <x>', path: 'labelFraction' },
  { flags: '--from <file>', path: 'from' },
  { flags: '--which <encoder>', path: 'which' },
  { flags: '--pth-heads <n>', path: 'numHeads' },
  { flags: '--out <dir>', path: 'out' },
  { flags: '--epochs <n>', path: 'epochs' },
  { flags: '--warmup-epochs <x>', path: 'warmupEpochs' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--accumulate <n>', path: 'accumulate' },
  { flags: '--base-lr <x>', path: 'baseLr' },
  { flags: '--min-lr <x>', path: 'minLr' },
  { flags: '--weight-decay <x>', path: 'weightDecay' },
  { flags: '--layer-decay <x>', path: 'layerDecay' },
  { flags: '--betas <b1,b2>', path: 'betas' },
  { flags: '--clip-grad <x>', path: 'clipGrad' },
  { flags: '--drop-path <x>', path: 'dropPath' },
  { flags: '--ema <decay>', path: 'ema' },
  { flags: '--eval-crop-pct <x>', path: 'evalCropPct' },
  { flags: '--precision <p>', path: 'precision' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--loss-every <n>', path: 'lossEvery' },
  { flags: '--seed <n>', path: 'seed' },
  { flags: '--workers <n>', path: 'workers' },
  { flags: '--strict', path: 'strict' },
  { flags: '--checkpoint-every <n>', path: 'checkpointEvery' },
  { flags: '--model-preset <name>', path: 'encoder.preset' },
  { flags: '--img-size <n>', path: 'encoder.imgSize' },
  { flags: '--patch-size <n>', path: 'encoder.patchSize' },
  { flags: '--in-chans <n>', path: 'encoder.inChans' },
  { flags: '--width <n>', path: 'encoder.embedDim' },
  { flags: '--depth <n>', path: 'encoder.depth' },
  { flags: '--heads <n>', path: 'encoder.numHeads' },
  { flags: '--mlp-ratio <x>', path: 'encoder.mlpRatio' },
  { flags: '--qkv-bias <bool>', path: 'encoder.qkvBias' },
  { flags: '--norm-eps <x>', path: 'encoder.normEps' },
  { flags: '--crop-scale <lo,hi>', path: 'augment.scale' },
  { flags: '--flip-p <x>', path: 'augment.flipP' },
  { flags: '--color-jitter <x>', path: 'augment.colorJitter' },
  { flags: '--rand-augment <spec>', path: 'augment.randAugment' },
  { flags: '--reprob <x>', path: 'augment.reprob' },
  { flags: '--mixup <alpha>', path: 'augment.mixup' },
  { flags: '--cutmix <alpha>', path: 'augment.cutmix' },
  { flags: '--mixup-prob <x>', path: 'augment.mixupProb' },
  { flags: '--mixup-switch-prob <x>', path: 'augment.switchProb' },
  { flags: '--smoothing <x>', path: 'augment.labelSmoothing' },
];

export function addFinetuneCommand(program: Command): void {
  addRecipeCommand(program, {
    name: 'finetune',
    description: 'fine-tune a classifier from a pretraining checkpoint (or from scratch); writes config.json, log.jsonl, checkpoint.safetensors, classifier.safetensors and loss/lr/accuracy plots into --out',
    schema: finetuneSchema, flags: FINETUNE_FLAGS, presets: Object.keys(FINETUNE_PRESETS), defaultPreset: `${DEFAULT_FINETUNE_PRESET}: the bundled Fashion-MNIST subset`,
    resolve: (input) => finetuneConfig(input as FinetuneConfigInput),
    async run(input, run) {
      const progress = epochProgress(run.quiet === true);
      const result = await finetune(input as FinetuneConfigInput, {
        onMessage: (line) => process.stderr.write(`${line}\n`),
        onStep: (r) => progress.step(r),
        onEpoch: (r) => {
          progress.end();
          if (r.top1 !== null) process.stderr.write(`epoch ${r.epoch}: test top-1 ${percent(r.top1)}, top-5 ${percent(r.top5)}\n`);
        },
      }, { resume: run.resume, ...(run.stopAfter !== undefined ? { stopAfterIterations: run.stopAfter } : {}) });
      process.stdout.write(`test top-1: ${percent(result.top1)}  top-5: ${percent(result.top5)}\n`);
      process.stdout.write(`run folder: ${result.out} (classifier ${result.classifier ?? 'not written: stopped early'}; checkpoint ${result.checkpoint}; plots: ${result.plots.join(', ')})\n`);
    },
  });
}
