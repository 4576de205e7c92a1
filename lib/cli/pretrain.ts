// `extrema pretrain` and `extrema knn`: flags and a JSON config file over the
// presets of lib/train/config.ts (preset < --config file < flags).
import * as fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pretrain } from '../train/pretrain';
import { PRESETS, mergeConfig, type PretrainConfigInput } from '../train/config';
import { loadEncoder } from '../extrema/checkpoint';
import { openKnnSets, knnMonitor } from '../train/knn-monitor';
import { ProgressBar } from './progress';
import { setNumThreads } from '../runtime/device-runtime';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`Expected a non-negative integer for ${name} but received "${v}"`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number for ${name} but received "${v}"`);
  return n;
};
const pair = (name: string) => (v: string) => {
  const parts = v.split(',').map(Number);
  if (parts.length !== 2 || parts.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError(`Expected two comma-separated numbers for ${name} but received "${v}"`);
  return parts as [number, number];
};

interface Flags { [k: string]: unknown }

/** Maps the parsed flags onto the config's nested shape; absent flags stay absent. */
function fromFlags(f: Flags): PretrainConfigInput {
  const pick = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  const encoder = pick({
    preset: f.modelPreset, imgSize: f.imgSize, patchSize: f.patchSize, inChans: f.inChans, embedDim: f.width, depth: f.depth, numHeads: f.heads,
    classAttentionLayers: f.classAttentionLayers, pooling: f.pooling, dropPathRate: f.dropPath,
  });
  const model = pick({
    maskRatio: f.maskRatio, numMasks: f.numMasks, maskMode: f.maskMode, loss: f.loss, temperature: f.temperature, momentum: f.momentum,
    projectorHiddenDim: f.projectorHidden, projectorDim: f.projectorDim, predictorHiddenDim: f.predictorHidden,
    ...(Object.keys(encoder).length > 0 ? { encoder } : {}),
  });
  const jitter = f.jitter as number[] | undefined;
  const augment = pick({
    scheme: f.augment, scale: f.cropScale, flipP: f.flipP, grayscaleP: f.grayscaleP,
    jitter: jitter === undefined && f.jitterP === undefined ? undefined
      : pick({ brightness: jitter?.[0], contrast: jitter?.[1], saturation: jitter?.[2], hue: jitter?.[3], p: f.jitterP as number | undefined }),
  });
  const knn = pick({ every: f.knnEvery, bank: f.knnBank, bankLimit: f.knnBankLimit, queries: f.knnQueries, queryLimit: f.knnQueryLimit, k: f.knnK, temperature: f.knnTemperature });
  return pick({
    preset: f.preset, train: f.train, trainLimit: f.trainLimit, out: f.out, epochs: f.epochs, warmupEpochs: f.warmupEpochs, batchSize: f.batchSize,
    accumulate: f.accumulate, baseLr: f.baseLr, minLr: f.minLr, weightDecay: f.weightDecay, weightDecayEnd: f.weightDecayEnd, betas: f.betas,
    clipGrad: f.clipGrad, precision: f.precision, device: f.device, seed: f.seed, workers: f.workers, strict: f.strict, checkpointEvery: f.checkpointEvery,
    ...(Object.keys(model).length > 0 ? { model } : {}),
    ...(Object.keys(augment).length > 0 ? { augment } : {}),
    ...(Object.keys(knn).length > 0 ? { knn } : {}),
  }) as PretrainConfigInput;
}

function readConfigFile(file: string): PretrainConfigInput {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read the config file ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as PretrainConfigInput;
  } catch (e) {
    throw new Error(`The config file ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

export function addPretrainCommands(program: Command): void {
  program.command('pretrain')
    .description('pretrain an ExtreMA encoder; writes config.json, log.jsonl, checkpoint.safetensors and loss/lr/knn plots into --out')
    .option('--preset <name>', `recipe preset: ${Object.keys(PRESETS).join(', ')} (default demo: bundled Fashion-MNIST subset)`)
    .option('--config <file>', 'JSON config (same field names as config.json); flags override it')
    .option('--train <path>', 'training images: IDX file or image folder')
    .option('--train-limit <n>', 'use only the first n training images', int('--train-limit'))
    .option('--out <dir>', 'run folder')
    .option('--epochs <n>', 'epochs', int('--epochs'))
    .option('--warmup-epochs <x>', 'linear warmup epochs', num('--warmup-epochs'))
    .option('--batch-size <n>', 'images per step (per micro-batch with --accumulate)', int('--batch-size'))
    .option('--accumulate <n>', 'micro-batches per optimizer step', int('--accumulate'))
    .option('--base-lr <x>', 'learning rate at batch 256 (scaled by batch/256)', num('--base-lr'))
    .option('--min-lr <x>', 'floor of the cosine decay', num('--min-lr'))
    .option('--weight-decay <x>', 'AdamW weight decay', num('--weight-decay'))
    .option('--weight-decay-end <x>', 'cosine weight decay to this value', num('--weight-decay-end'))
    .option('--betas <b1,b2>', 'AdamW betas', pair('--betas'))
    .option('--clip-grad <x>', 'clip the gradient norm', num('--clip-grad'))
    .option('--precision <p>', 'fp32, bf16 (autocast) or fp16 (autocast + loss scaler, CUDA)')
    .option('--device <device>', 'cpu, cuda, cuda:N')
    .option('--seed <n>', 'seed for init, data order, augmentation and masks', int('--seed'))
    .option('--workers <n>', 'images decoded at once', int('--workers'))
    .option('--strict', 'stop on an image that fails to decode (default: report and skip)')
    .option('--checkpoint-every <n>', 'epochs between checkpoints', int('--checkpoint-every'))
    .option('--model-preset <name>', 'ViT size: tiny, small, base, large')
    .option('--img-size <n>', 'input size', int('--img-size'))
    .option('--patch-size <n>', 'patch size', int('--patch-size'))
    .option('--in-chans <n>', 'image channels (1 or 3)', int('--in-chans'))
    .option('--width <n>', 'token width', int('--width'))
    .option('--depth <n>', 'self-attention blocks', int('--depth'))
    .option('--heads <n>', 'attention heads', int('--heads'))
    .option('--class-attention-layers <n>', 'class-attention blocks', int('--class-attention-layers'))
    .option('--pooling <p>', 'class-attention, class-token or mean')
    .option('--drop-path <x>', 'stochastic depth rate', num('--drop-path'))
    .option('--mask-ratio <x>', 'fraction of patches masked per view', num('--mask-ratio'))
    .option('--num-masks <n>', 'masked views per image', int('--num-masks'))
    .option('--mask-mode <m>', 'disjoint or independent')
    .option('--loss <l>', 'byol or infonce')
    .option('--temperature <x>', 'InfoNCE temperature', num('--temperature'))
    .option('--momentum <x>', 'base EMA momentum', num('--momentum'))
    .option('--projector-hidden <n>', 'projector hidden width', int('--projector-hidden'))
    .option('--projector-dim <n>', 'projector/predictor output width', int('--projector-dim'))
    .option('--predictor-hidden <n>', 'predictor hidden width', int('--predictor-hidden'))
    .option('--augment <scheme>', 'none, color, crop, crop+color, two-views, shared-crop+color')
    .option('--crop-scale <lo,hi>', 'RandomResizedCrop scale', pair('--crop-scale'))
    .option('--flip-p <x>', 'horizontal flip probability', num('--flip-p'))
    .option('--jitter <b,c,s,h>', 'ColorJitter strengths', (v) => {
      const parts = v.split(',').map(Number);
      if (parts.length !== 4 || parts.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError(`Expected four comma-separated numbers for --jitter but received "${v}"`);
      return parts;
    })
    .option('--jitter-p <x>', 'probability of colour jitter', num('--jitter-p'))
    .option('--grayscale-p <x>', 'probability of grayscale', num('--grayscale-p'))
    .option('--knn-every <n>', 'kNN monitor every n epochs (0: off)', int('--knn-every'))
    .option('--knn-bank <path>', 'labelled bank images (default: the training set)')
    .option('--knn-bank-limit <n>', 'first n bank images', int('--knn-bank-limit'))
    .option('--knn-queries <path>', 'labelled query images')
    .option('--knn-query-limit <n>', 'first n query images', int('--knn-query-limit'))
    .option('--knn-k <n>', 'neighbours', int('--knn-k'))
    .option('--knn-temperature <x>', 'vote temperature', num('--knn-temperature'))
    .option('--resume <file>', 'resume from a checkpoint; "auto" (default) resumes from the run folder if it has one, "never" starts over')
    .option('--stop-after <n>', 'stop (with a checkpoint) after n optimizer steps in total', int('--stop-after'))
    .option('--threads <n>', 'intra-op CPU threads (default: libtorch\'s choice)', int('--threads'))
    .option('--quiet', 'no progress bar')
    .action(async (flags: Flags) => {
      if (flags.threads !== undefined) setNumThreads(flags.threads as number);
      const fileConfig = typeof flags.config === 'string' ? readConfigFile(flags.config) : {};
      const input = mergeConfig(fileConfig, fromFlags(flags));
      let bar: ProgressBar | null = null;
      let barEpoch = -1;
      const quiet = flags.quiet === true;
      const result = await pretrain(input, {
        onMessage: (line) => process.stderr.write(`${line}\n`),
        onKnn: ({ epoch, accuracy }) => process.stderr.write(`${bar ? '\n' : ''}kNN top-1 after epoch ${epoch}: ${(accuracy * 100).toFixed(2)}%\n`),
        onStep: (r) => {
          if (quiet) return;
          if (r.epoch !== barEpoch) {
            bar?.finish();
            bar = new ProgressBar({ total: r.stepsPerEpoch, label: `epoch ${r.epoch + 1}`, unit: 'step' });
            bar.tick(r.step - 1);
            barEpoch = r.epoch;
          }
          bar?.tick(1, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${r.imagesPerSecond.toFixed(0)} img/s`);
        },
        onEpoch: () => {
          bar?.finish();
          bar = null;
          barEpoch = -1;
        },
        ...(flags.stopAfter !== undefined ? { stopAfterIterations: flags.stopAfter as number } : {}),
      }, { resume: (flags.resume as string | undefined) ?? 'auto' });
      const pct = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(2)}%`);
      process.stdout.write(`kNN top-1 before: ${pct(result.knnBefore)}  after: ${pct(result.knnAfter)}\n`);
      process.stdout.write(`run folder: ${result.out} (checkpoint ${result.checkpoint}; plots: ${result.plots.join(', ')})\n`);
    });

  program.command('knn')
    .description("kNN accuracy of a checkpoint's teacher features: cosine similarity, k neighbours, votes weighted exp(sim / T)")
    .requiredOption('--checkpoint <file>', "this project's .safetensors or the authors' .pth")
    .requiredOption('--train <path>', 'labelled bank images (IDX with labels beside it, or a class folder)')
    .requiredOption('--test <path>', 'labelled query images')
    .option('--bank-limit <n>', 'first n bank images (0: all)', int('--bank-limit'), 0)
    .option('--query-limit <n>', 'first n query images (0: all)', int('--query-limit'), 0)
    .option('--k <n>', 'neighbours', int('--k'), 200)
    .option('--temperature <x>', 'vote temperature', num('--temperature'), 0.07)
    .option('--batch-size <n>', 'images per forward pass', int('--batch-size'), 256)
    .option('--device <device>', 'cpu, cuda, cuda:N', 'cpu')
    .option('--heads <n>', 'attention heads of a .pth model (default width / 64)', int('--heads'))
    .action(async (o: { checkpoint: string; train: string; test: string; bankLimit: number; queryLimit: number; k: number; temperature: number; batchSize: number; device: string; heads?: number }) => {
      const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, device: o.device });
      try {
        const enc = config.encoder;
        const sets = openKnnSets(o.train, o.test, enc.imgSize[0], enc.inChans === 1 ? 1 : 3, o.bankLimit, o.queryLimit);
        const accuracy = await knnMonitor(encoder, sets, { k: o.k, temperature: o.temperature, device: o.device, batchSize: o.batchSize });
        process.stdout.write(`kNN top-1: ${(accuracy * 100).toFixed(2)}% (${sets.queries.count} queries, bank ${sets.bank.count}, k ${o.k}, T ${o.temperature})\n`);
      } finally {
        encoder.dispose();
      }
    });
}
