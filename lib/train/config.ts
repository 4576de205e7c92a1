// The pretraining recipe as one typed object with documented defaults, named
// presets, and validation. It is written into the run folder as JSON, and
// every field can come from a JSON file (--config) or a CLI flag.
import * as path from 'node:path';
import { describe } from '../tensor/dtype';
import { extremaConfig, type ExtremaConfig, type ExtremaConfigInput } from '../extrema/config';
import type { AugmentScheme } from '../data/augment';

export type Precision = 'fp32' | 'bf16' | 'fp16';

export interface PretrainConfig {
  /** Training images: an IDX file (labels beside it are used by the kNN monitor) or an image folder. */
  train: string;
  /** Use only the first N training images (0: all). */
  trainLimit: number;
  model: ExtremaConfig;
  augment: {
    scheme: AugmentScheme;
    /** RandomResizedCrop scale range. */
    scale: [number, number];
    flipP: number;
    jitter: { brightness: number; contrast: number; saturation: number; hue: number; p: number };
    grayscaleP: number;
  };
  /** Images per optimizer step (per micro-batch when accumulating). */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  epochs: number;
  warmupEpochs: number;
  /** Learning rate for a batch of 256; the run uses base * (batchSize * accumulate) / 256. */
  baseLr: number;
  /** Floor the half-cosine decays to. */
  minLr: number;
  weightDecay: number;
  /** If set, weight decay follows a cosine from weightDecay to this value. */
  weightDecayEnd: number | null;
  betas: [number, number];
  /** Clip the gradient norm to this value (null: no clipping, as the authors). */
  clipGrad: number | null;
  precision: Precision;
  knn: {
    /** Run the monitor every N epochs (0: never); also before training and at the end. */
    every: number;
    /** Bank images (default: the training set) and how many of them. */
    bank: string | null;
    bankLimit: number;
    /** Query images with labels (e.g. the test set). */
    queries: string | null;
    queryLimit: number;
    k: number;
    temperature: number;
  };
  /** Write a checkpoint every N epochs (and at the end). */
  checkpointEvery: number;
  seed: number;
  device: string;
  /** Run folder: config.json, log.jsonl, checkpoint.safetensors, plots. */
  out: string;
  /** Decoding threads per batch for image folders. */
  workers: number;
  /** Stop on an image that fails to decode (default: report and skip it). */
  strict: boolean;
}

const FMNIST = '/usr/share/datasets/fashion-mnist';
const BUNDLED = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist');

/** The paper's augmentation (shared crop + per-view colour), ImageNet recipe. */
const PAPER_AUGMENT: PretrainConfig['augment'] = {
  scheme: 'shared-crop+color', scale: [0.2, 1], flipP: 0.5,
  jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 }, grayscaleP: 0.2,
};

/** Fashion-MNIST: grayscale, so only brightness/contrast jitter means anything. */
const GRAY_AUGMENT: PretrainConfig['augment'] = {
  scheme: 'shared-crop+color', scale: [0.2, 1], flipP: 0.5,
  jitter: { brightness: 0.4, contrast: 0.4, saturation: 0, hue: 0, p: 0.8 }, grayscaleP: 0,
};

/** The small CPU model: 28 px, patch 4 (49 tokens), width 192, depth 6, 3 heads, 2 class-attention blocks. */
const CPU_MODEL: ExtremaConfigInput = {
  encoder: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 192, depth: 6, numHeads: 3, classAttentionLayers: 2 },
  projectorHiddenDim: 1024, projectorDim: 256, predictorHiddenDim: 1024, maskRatio: 0.8, numMasks: 2,
};

type Preset = Omit<PretrainConfig, 'model'> & { model: ExtremaConfigInput };

const BASE: Omit<Preset, 'train' | 'model'> = {
  trainLimit: 0,
  augment: PAPER_AUGMENT,
  batchSize: 256, accumulate: 1, epochs: 300, warmupEpochs: 40,
  baseLr: 1.5e-4, minLr: 0, weightDecay: 0.1, weightDecayEnd: null, betas: [0.9, 0.95], clipGrad: null,
  precision: 'fp32',
  knn: { every: 1, bank: null, bankLimit: 10000, queries: null, queryLimit: 2000, k: 200, temperature: 0.07 },
  checkpointEvery: 1, seed: 0, device: 'cpu', out: 'runs/extrema', workers: 8, strict: false,
};

export const PRESETS: Record<string, Preset> = {
  /** The paper's ViT-B/16 recipe at 224 px (ImageNet folder; batch 2048 as 8 x 256 accumulated on one device). */
  'vit-b-224': {
    ...BASE, train: 'imagenet/train', model: { encoder: { preset: 'base', imgSize: 224, patchSize: 16, dropPathRate: 0.1 }, maskRatio: 0.8, numMasks: 2 },
    batchSize: 256, accumulate: 8, precision: 'bf16', knn: { ...BASE.knn, every: 10, queries: 'imagenet/val' }, checkpointEvery: 5, out: 'runs/vit-b-224',
  },
  /** The paper's ViT-S/16 recipe at 224 px. */
  'vit-s-224': {
    ...BASE, train: 'imagenet/train', model: { encoder: { preset: 'small', imgSize: 224, patchSize: 16, dropPathRate: 0.1 }, maskRatio: 0.8, numMasks: 2 },
    batchSize: 256, accumulate: 8, precision: 'bf16', knn: { ...BASE.knn, every: 10, queries: 'imagenet/val' }, checkpointEvery: 5, out: 'runs/vit-s-224',
  },
  /** Issue 4's small CPU recipe on the full Fashion-MNIST of Debian's dataset-fashion-mnist. */
  'cpu-small': {
    ...BASE, train: `${FMNIST}/train-images-idx3-ubyte.gz`, model: CPU_MODEL, augment: GRAY_AUGMENT,
    batchSize: 256, epochs: 4, warmupEpochs: 1, baseLr: 5e-4,
    knn: { ...BASE.knn, queries: `${FMNIST}/t10k-images-idx3-ubyte.gz` }, out: 'runs/cpu-small',
  },
  /** The main job: the small CPU recipe on the bundled 5,000-image subset, a few minutes on 2 cores. */
  demo: {
    ...BASE, train: `${BUNDLED}/train-images-idx3-ubyte.gz`, model: CPU_MODEL, augment: GRAY_AUGMENT,
    batchSize: 128, epochs: 5, warmupEpochs: 1, baseLr: 5e-4,
    knn: { ...BASE.knn, every: 1, bankLimit: 5000, queries: `${BUNDLED}/t10k-images-idx3-ubyte.gz`, queryLimit: 1000 }, out: 'runs/demo',
  },
};

export type PretrainConfigInput = Partial<Omit<PretrainConfig, 'model' | 'augment' | 'knn'>> & {
  preset?: string;
  model?: ExtremaConfigInput;
  augment?: Partial<PretrainConfig['augment']> & { jitter?: Partial<PretrainConfig['augment']['jitter']> };
  knn?: Partial<PretrainConfig['knn']>;
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Overlays b on a: nested plain objects merge, everything else (arrays too) replaces. */
export function mergeConfig<T>(a: T, b: unknown): T {
  if (!isObject(a) || !isObject(b)) return (b === undefined ? a : b) as T;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) if (v !== undefined) out[k] = k in out ? mergeConfig(out[k], v) : v;
  return out as T;
}

const KNOWN = new Set([...Object.keys(BASE), 'train', 'model', 'preset']);

/** Resolves a preset (default 'demo') with overrides and validates everything. */
export function pretrainConfig(input: PretrainConfigInput = {}): PretrainConfig {
  if (!isObject(input)) throw new TypeError(`Expected a pretrain config object but received ${describe(input)}`);
  for (const k of Object.keys(input)) if (!KNOWN.has(k)) throw new TypeError(`Unknown pretrain config field "${k}"`);
  const name = input.preset ?? 'demo';
  const preset = PRESETS[name];
  if (preset === undefined) throw new TypeError(`Expected one of ${Object.keys(PRESETS).join(', ')} for "preset" but received ${describe(name)}`);
  const { preset: _ignored, ...rest } = input;
  void _ignored;
  const merged = mergeConfig(preset, rest) as Preset;
  const cfg: PretrainConfig = { ...merged, model: extremaConfig(merged.model) };
  validate(cfg);
  return cfg;
}

function check(ok: boolean, field: string, expected: string, value: unknown): void {
  if (!ok) throw new RangeError(`Expected ${expected} for "${field}" but received ${describe(value)}`);
}

const int = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
const num = (v: unknown, min: number, max = Infinity) => typeof v === 'number' && v >= min && v <= max;
const prob = (v: unknown) => num(v, 0, 1);

function validate(c: PretrainConfig): void {
  check(typeof c.train === 'string' && c.train.length > 0, 'train', 'a path', c.train);
  check(int(c.trainLimit, 0), 'trainLimit', 'an integer >= 0', c.trainLimit);
  check(int(c.batchSize, 1), 'batchSize', 'a positive integer', c.batchSize);
  check(int(c.accumulate, 1), 'accumulate', 'a positive integer', c.accumulate);
  check(int(c.epochs, 1), 'epochs', 'a positive integer', c.epochs);
  check(num(c.warmupEpochs, 0) && c.warmupEpochs < c.epochs, 'warmupEpochs', `a number in [0, epochs = ${c.epochs})`, c.warmupEpochs);
  check(num(c.baseLr, 0) && c.baseLr > 0, 'baseLr', 'a positive number', c.baseLr);
  check(num(c.minLr, 0, c.baseLr), 'minLr', 'a number in [0, baseLr]', c.minLr);
  check(num(c.weightDecay, 0), 'weightDecay', 'a number >= 0', c.weightDecay);
  check(c.weightDecayEnd === null || num(c.weightDecayEnd, 0), 'weightDecayEnd', 'null or a number >= 0', c.weightDecayEnd);
  check(Array.isArray(c.betas) && c.betas.length === 2 && c.betas.every((b) => num(b, 0, 0.999999)), 'betas', 'two numbers in [0, 1)', c.betas);
  check(c.clipGrad === null || (num(c.clipGrad, 0) && c.clipGrad > 0), 'clipGrad', 'null or a positive number', c.clipGrad);
  check(['fp32', 'bf16', 'fp16'].includes(c.precision), 'precision', '"fp32", "bf16" or "fp16"', c.precision);
  check(int(c.knn.every, 0), 'knn.every', 'an integer >= 0', c.knn.every);
  check(int(c.knn.k, 1), 'knn.k', 'a positive integer', c.knn.k);
  check(num(c.knn.temperature, 0) && c.knn.temperature > 0, 'knn.temperature', 'a positive number', c.knn.temperature);
  check(int(c.knn.bankLimit, 0) && int(c.knn.queryLimit, 0), 'knn.bankLimit/queryLimit', 'integers >= 0', [c.knn.bankLimit, c.knn.queryLimit]);
  check(int(c.checkpointEvery, 1), 'checkpointEvery', 'a positive integer', c.checkpointEvery);
  check(int(c.seed, 0), 'seed', 'an integer >= 0', c.seed);
  check(int(c.workers, 1), 'workers', 'a positive integer', c.workers);
  const a = c.augment;
  check(Array.isArray(a.scale) && a.scale.length === 2 && num(a.scale[0], 0, 1) && num(a.scale[1], a.scale[0] as number, 1) && (a.scale[0] as number) > 0, 'augment.scale', 'two numbers 0 < lo <= hi <= 1', a.scale);
  check(prob(a.flipP) && prob(a.grayscaleP) && prob(a.jitter.p), 'augment probabilities', 'probabilities in [0, 1]', [a.flipP, a.grayscaleP, a.jitter.p]);
  if (c.precision !== 'fp32' && c.device === 'cpu' && c.precision === 'fp16') {
    throw new RangeError('fp16 with a dynamic loss scaler is for CUDA; on CPU use "fp32" or "bf16"');
  }
}
