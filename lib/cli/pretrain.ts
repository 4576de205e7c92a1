// `extrema pretrain` and `extrema knn`. Every recipe field of
// lib/train/config.ts has one flag, generated from the schema with the names
// below; the run flags and the preset < file < flags order come from
// ./recipe-command.
import type { Command } from 'commander';
import type { z } from 'zod';
import { pretrain } from '../train/pretrain';
import { PRESETS, DEFAULT_PRESET, pretrainSchema, pretrainConfig, knnFields, type PretrainConfigInput } from '../train/config';
import { addSchemaOptions, inputFromFlags, parseConfig, int, text, record, type FlagSpec } from '../config';
import { checkpointKnn } from '../train/knn-monitor';
import { addRecipeCommand, epochProgress, percent } from './recipe-command';
import { worldFromEnv } from '../runtime/world-env';

/** Flag names of the recipe fields, in --help order; they are the names earlier releases had. */
export const PRETRAIN_FLAGS: readonly FlagSpec[] = [
  { flags: '--train <path>', path: 'train' },
  { flags: '--train-limit <n>', path: 'trainLimit' },
  { flags: '--out <dir>', path: 'out' },
  { flags: '--epochs <n>', path: 'epochs' },
  { flags: '--warmup-epochs <x>', path: 'warmupEpochs' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--accumulate <n>', path: 'accumulate' },
  { flags: '--base-lr <x>', path: 'baseLr' },
  { flags: '--min-lr <x>', path: 'minLr' },
  { flags: '--predictor-lr-scale <x>', path: 'predictorLrScale' },
  { flags: '--weight-decay <x>', path: 'weightDecay' },
  { flags: '--weight-decay-end <x>', path: 'weightDecayEnd' },
  { flags: '--betas <b1,b2>', path: 'betas' },
  { flags: '--clip-grad <x>', path: 'clipGrad' },
  { flags: '--precision <p>', path: 'precision' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--cuda-graph', path: 'cudaGraph' },
  { flags: '--loss-every <n>', path: 'lossEvery' },
  { flags: '--collapse-every <n>', path: 'collapseEvery' },
  { flags: '--global-draws', path: 'globalDraws' },
  { flags: '--sync-check-every <n>', path: 'syncCheckEvery' },
  { flags: '--seed <n>', path: 'seed' },
  { flags: '--workers <n>', path: 'workers' },
  { flags: '--strict', path: 'strict' },
  { flags: '--checkpoint-every <n>', path: 'checkpointEvery' },
  { flags: '--model-preset <name>', path: 'model.encoder.preset' },
  { flags: '--img-size <n>', path: 'model.encoder.imgSize' },
  { flags: '--patch-size <n>', path: 'model.encoder.patchSize' },
  { flags: '--in-chans <n>', path: 'model.encoder.inChans' },
  { flags: '--width <n>', path: 'model.encoder.embedDim' },
  { flags: '--depth <n>', path: 'model.encoder.depth' },
  { flags: '--heads <n>', path: 'model.encoder.numHeads' },
  { flags: '--mlp-ratio <x>', path: 'model.encoder.mlpRatio' },
  { flags: '--qkv-bias <bool>', path: 'model.encoder.qkvBias' },
  { flags: '--class-attention-layers <n>', path: 'model.encoder.classAttentionLayers' },
  { flags: '--layer-scale-init <x>', path: 'model.encoder.layerScaleInit' },
  { flags: '--pooling <p>', path: 'model.encoder.pooling' },
  { flags: '--drop-path <x>', path: 'model.encoder.dropPathRate' },
  { flags: '--norm-eps <x>', path: 'model.encoder.normEps' },
  { flags: '--mask-ratio <x>', path: 'model.maskRatio' },
  { flags: '--num-masks <n>', path: 'model.numMasks' },
  { flags: '--mask-mode <m>', path: 'model.maskMode' },
  { flags: '--loss <l>', path: 'model.loss' },
  { flags: '--temperature <x>', path: 'model.temperature' },
  { flags: '--momentum <x>', path: 'model.momentum' },
  { flags: '--momentum-schedule <s>', path: 'model.momentumSchedule' },
  { flags: '--projector-hidden <n>', path: 'model.projectorHiddenDim' },
  { flags: '--projector-dim <n>', path: 'model.projectorDim' },
  { flags: '--projector-layers <n>', path: 'model.projectorLayers' },
  { flags: '--predictor-hidden <n>', path: 'model.predictorHiddenDim' },
  { flags: '--predictor-layers <n>', path: 'model.predictorLayers' },
  { flags: '--head-norm <norm>', path: 'model.headNorm' },
  { flags: '--augment <scheme>', path: 'augment.scheme' },
  { flags: '--crop-scale <lo,hi>', path: 'augment.scale' },
  { flags: '--flip-p <x>', path: 'augment.flipP' },
  { flags: '--jitter <b,c,s,h>', path: ['augment.jitter.brightness', 'augment.jitter.contrast', 'augment.jitter.saturation', 'augment.jitter.hue'], description: 'ColorJitter strengths' },
  { flags: '--jitter-p <x>', path: 'augment.jitter.p' },
  { flags: '--grayscale-p <x>', path: 'augment.grayscaleP' },
  { flags: '--knn-every <n>', path: 'knn.every' },
  { flags: '--knn-bank <path>', path: 'knn.bank' },
  { flags: '--knn-bank-limit <n>', path: 'knn.bankLimit' },
  { flags: '--knn-queries <path>', path: 'knn.queries' },
  { flags: '--knn-query-limit <n>', path: 'knn.queryLimit' },
  { flags: '--knn-k <n>', path: 'knn.k' },
  { flags: '--knn-temperature <x>', path: 'knn.temperature' },
  { flags: '--knn-probe <bool>', path: 'knn.probe' },
];

const knnCommandSchema = record({
  checkpoint: text('a file path').describe("this project's .safetensors or the authors' .pth"),
  train: text('a path').describe('labelled bank images (IDX with labels beside it, or a class folder)'),
  test: text('a path').describe('labelled query images'),
  bankLimit: knnFields.bankLimit.default(0),
  queryLimit: knnFields.queryLimit.default(0),
  k: knnFields.k.default(200),
  temperature: knnFields.temperature.default(0.07),
  batchSize: int(1, 65_536).default(256).describe('images per forward pass'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda, cuda:N'),
  heads: int(1, 1024).optional().describe('attention heads of a .pth model (default width / 64)'),
});
const KNN_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--train <path>', path: 'train' },
  { flags: '--test <path>', path: 'test' },
  { flags: '--bank-limit <n>', path: 'bankLimit' },
  { flags: '--query-limit <n>', path: 'queryLimit' },
  { flags: '--k <n>', path: 'k' },
  { flags: '--temperature <x>', path: 'temperature' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--heads <n>', path: 'heads' },
];

export function addPretrainCommands(program: Command): void {
  addRecipeCommand(program, {
    name: 'pretrain',
    description: 'pretrain an ExtreMA encoder; writes config.json, log.jsonl, checkpoint.safetensors and loss/lr/knn plots into --out',
    schema: pretrainSchema, flags: PRETRAIN_FLAGS, presets: Object.keys(PRESETS), defaultPreset: `${DEFAULT_PRESET}: the bundled Fashion-MNIST subset`,
    resolve: (input) => pretrainConfig(input as PretrainConfigInput),
    async run(input, run) {
      // in a distributed run (torchrun's environment) rank 0 alone reports
      const lead = (worldFromEnv()?.rank ?? 0) === 0;
      const progress = epochProgress(run.quiet === true || !lead);
      const result = await pretrain(input as PretrainConfigInput, !lead ? {} : {
        onMessage: (line) => process.stderr.write(`${line}\n`),
        onKnn: ({ epoch, accuracy }) => {
          progress.end();
          process.stderr.write(`kNN top-1 after epoch ${epoch}: ${percent(accuracy)}\n`);
        },
        onProbe: ({ epoch, top1 }) => {
          progress.end();
          process.stderr.write(`linear probe top-1 after epoch ${epoch}: ${percent(top1)}\n`);
        },
        onStep: (r) => progress.step(r),
        onEpoch: () => progress.end(),
      }, { resume: run.resume, ...(run.stopAfter !== undefined ? { stopAfterIterations: run.stopAfter } : {}) });
      if (!lead) return;
      process.stdout.write(`kNN top-1 before: ${percent(result.knnBefore)}  after: ${percent(result.knnAfter)}\n`);
      if (result.probeBefore !== null || result.probeAfter !== null) {
        process.stdout.write(`linear probe (cached) top-1 before: ${percent(result.probeBefore)}  after: ${percent(result.probeAfter)}\n`);
      }
      process.stdout.write(`run folder: ${result.out} (checkpoint ${result.checkpoint}; plots: ${result.plots.join(', ')})\n`);
    },
  });

  const knn = program.command('knn')
    .description("kNN accuracy of a checkpoint's teacher features: cosine similarity, k neighbours, votes weighted exp(sim / T)");
  addSchemaOptions(knn, knnCommandSchema, KNN_FLAGS, { enforceRequired: true, showDefaults: true });
  knn.action(async (flags: Record<string, unknown>) => {
    const o: z.output<typeof knnCommandSchema> = parseConfig(knnCommandSchema, inputFromFlags(flags, knnCommandSchema, KNN_FLAGS), { what: 'knn option' });
    const r = await checkpointKnn(o);
    process.stdout.write(`kNN top-1: ${(r.accuracy * 100).toFixed(2)}% (${r.queries} queries, bank ${r.bank}, k ${o.k}, T ${o.temperature})\n`);
  });
}
