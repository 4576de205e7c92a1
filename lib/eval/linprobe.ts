// Linear probing, the authors' main_lincls: a frozen encoder's raw class
// token (the final LayerNorm removed) feeds BatchNorm1d without affine
// parameters + Linear (weight N(0, 0.01), bias 0), trained with SGD
// (momentum 0.9, no weight decay, lr 0.1 x batch / 256, linear warmup then a
// half cosine). Two modes:
//  - cached: features are extracted once without augmentation and the head
//    trains on them (batch 256, 20 epochs, warmup over the first 10% of steps);
//  - augmented: the authors' ImageNet protocol, RandomResizedCrop + flip of
//    every batch through the frozen encoder (90 epochs, 10 of warmup).
// The BatchNorm runs in train mode while training and in eval mode for the
// test set. `lars: true` swaps SGD for LARS (MAE's util/lars.py), as the
// authors' script offers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { noGrad } from '../autograd';
import { fail, positiveInt } from '../checks';
import { resizedCrop, randomResizedCropBoxes } from '../data/augment';
import { openDataset, type ImageDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { defaultNormalization, normalizeImages, type Normalization } from '../data/preprocess';
import { loadEncoder } from '../extrema/checkpoint';
import { writeFileAtomic } from '../io/fs';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors';
import { BatchNorm1d } from '../nn/batch-norm';
import { normal_, zeros_ } from '../nn/init';
import { Linear } from '../nn/linear';
import { Sequential } from '../nn/sequential';
import type { VisionTransformer } from '../nn/vision-transformer';
import { SGD } from '../optim/sgd';
import { warmupCosine } from '../optim/schedule';
import { Generator } from '../runtime/generator';
import { fromTypedArray, randint, randperm } from '../tensor/creation';
import { assertDevice, type Device } from '../tensor/device';
import { crossEntropy } from '../tensor/functional';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import { RunLog } from '../io/run-log';
import { embedDataset } from './embed';
import { withPackedLinears } from '../nn/pack-for-inference';

export const HEAD_FORMAT = 'extrema-linprobe/1';

/** BatchNorm1d(dim, affine = false) then Linear(dim, numClasses) with weight N(0, 0.01) and bias 0; state-dict names `0.*`, `1.*`. */
export function linearProbeHead(dim: number, numClasses: number, options: { seed?: number } = {}): Sequential {
  positiveInt(dim, '"dim" of linearProbeHead');
  positiveInt(numClasses, '"numClasses" of linearProbeHead');
  const generator = options.seed === undefined ? undefined : Generator.create(options.seed);
  const linear = new Linear(dim, numClasses, { generator });
  normal_(linear.weight, 0, 0.01, generator);
  zeros_(linear.bias!);
  return new Sequential(new BatchNorm1d(dim, { affine: false }), linear);
}

/** Rows of every step of `epochs` shuffled passes over `count` rows: one seeded permutation per epoch, the last incomplete batch dropped. */
export function shuffledBatches(count: number, batchSize: number, epochs: number, seed: number): Int32Array[] {
  positiveInt(batchSize, '"batchSize" of shuffledBatches');
  if (Math.floor(count / batchSize) === 0) throw new RangeError(`The training set has ${count} items, fewer than one batch of ${batchSize}`);
  const g = Generator.create(seed);
  const out: Int32Array[] = [];
  for (let e = 0; e < epochs; e++) {
    const perm = randperm(count, { generator: g });
    const order = Int32Array.from(perm.toTypedArray<'int64'>(), Number);
    perm.dispose();
    for (let s = 0; s + batchSize <= count; s += batchSize) out.push(order.subarray(s, s + batchSize));
  }
  return out;
}

export interface HeadTrainingOptions {
  /** peak lr, reached at the end of warmup */
  lr: number;
  /** linear warmup length in steps; then a half cosine to 0 at the last step */
  warmupSteps: number;
  momentum?: number;
  weightDecay?: number;
  /** LARS instead of SGD (see lib/optim/sgd.ts) */
  lars?: boolean;
  /** Called after every step with its loss and lr. */
  onStep?: (step: number, loss: number, lr: number) => void;
}

/** The lr of step t (0-based) of `total`: MAE's per-iteration rule, so the first step has lr 0. */
export function probeLr(step: number, total: number, options: Pick<HeadTrainingOptions, 'lr' | 'warmupSteps'>): number {
  return warmupCosine(step, { base: options.lr, warmupSteps: options.warmupSteps, totalSteps: total });
}

/** A head and its SGD: one step() per batch of features with the lr of that step. */
export class HeadTrainer {
  readonly optimizer: SGD;
  step = 0;

  constructor(readonly head: Sequential, readonly totalSteps: number, readonly options: HeadTrainingOptions) {
    positiveInt(totalSteps, '"totalSteps" of HeadTrainer');
    const params = head.parameters().filter((p) => p.requiresGrad);
    this.optimizer = new SGD(params, { lr: options.lr, momentum: options.momentum ?? 0.9, weightDecay: options.weightDecay ?? 0, lars: options.lars ?? false });
  }

  /** One SGD step on features [B, D] and int64 labels [B]; returns the loss. */
  train(features: Tensor, labels: Tensor): number {
    const lr = probeLr(this.step, this.totalSteps, this.options);
    const loss = scope(() => {
      this.head.train();
      this.optimizer.setLr(lr);
      this.optimizer.zeroGrad();
      const l = crossEntropy(this.head.forward(features), labels);
      l.backward();
      this.optimizer.step();
      return l.item();
    });
    this.options.onStep?.(this.step, loss, lr);
    this.step += 1;
    return loss;
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Trains the head on cached features, one step per batch of row indices (see shuffledBatches); returns the losses. */
export function trainLinearHead(head: Sequential, features: Tensor, labels: Tensor, batches: readonly Int32Array[], options: HeadTrainingOptions): number[] {
  if (batches.length === 0) throw new RangeError('trainLinearHead got no batches');
  const trainer = new HeadTrainer(head, batches.length, options);
  const device = features.device;
  try {
    return batches.map((rows) => scope(() => {
      const idx = fromTypedArray(BigInt64Array.from(rows, BigInt), [rows.length]).to({ device });
      return trainer.train(features.indexSelect(0, idx), labels.indexSelect(0, idx));
    }));
  } finally {
    trainer.dispose();
  }
}

export interface ProbeMetrics {
  count: number;
  top1: number;
  top5: number;
  /** accuracy of each class on its test items, null for a class without any */
  perClass: (number | null)[];
  /** row = true class, column = predicted class, numClasses x numClasses */
  confusion: Int32Array;
}

/** Accuracy of the head (eval mode) on features [N, D] with int64 labels [N]. */
export function evaluateHead(head: Sequential, features: Tensor, labels: Tensor, numClasses: number): ProbeMetrics {
  const wasTraining = head.training;
  head.eval();
  try {
    const { top, truth } = noGrad(() => scope(() => {
      const logits = head.forward(features);
      const k = Math.min(5, numClasses);
      return { top: logits.topk(k, 1).indices.cpu().toTypedArray<'int64'>(), truth: labels.cpu().toTypedArray<'int64'>() };
    }));
    const n = truth.length;
    const k = n === 0 ? 0 : top.length / n;
    const confusion = new Int32Array(numClasses * numClasses);
    const seen = new Int32Array(numClasses);
    let top1 = 0;
    let top5 = 0;
    for (let i = 0; i < n; i++) {
      const y = Number(truth[i]);
      const pred = Number(top[i * k]);
      confusion[y * numClasses + pred]! += 1;
      seen[y]! += 1;
      if (pred === y) top1++;
      for (let j = 0; j < k; j++) if (Number(top[i * k + j]) === y) top5++;
    }
    const perClass = Array.from(seen, (c, y) => (c === 0 ? null : confusion[y * numClasses + y]! / c));
    return { count: n, top1: n === 0 ? 0 : top1 / n, top5: n === 0 ? 0 : top5 / n, perClass, confusion };
  } finally {
    head.train(wasTraining);
  }
}

/**
 * The cached linear probe of an encoder on labelled train and test sets, in
 * memory (no files): the pretraining monitor's second measure beside kNN.
 * Same recipe as `extrema linprobe --mode cached`.
 */
export async function cachedProbe(encoder: VisionTransformer, train: ImageDataset, test: ImageDataset, o: { device?: Device; epochs?: number; batchSize?: number; baseLr?: number; seed?: number } = {}): Promise<ProbeMetrics> {
  const device = o.device ?? 'cpu';
  const epochs = positiveInt(o.epochs ?? 20, '"epochs" of cachedProbe');
  const batchSize = positiveInt(o.batchSize ?? 256, '"batchSize" of cachedProbe');
  const seed = o.seed ?? 0;
  const { numClasses, testLabels } = matchTestClasses(train, test);
  const embedding = (data: ImageDataset) => embedDataset(encoder, data, { device, instanceNorm: false });
  const trainSet = await embedding(train);
  const testSet = await embedding(test);
  const head = linearProbeHead(encoder.embedDim, numClasses, { seed }).to(device);
  const testY = fromTypedArray(BigInt64Array.from(testSet.indices, (i) => BigInt(testLabels[i]!)), [testSet.indices.length]).to({ device });
  try {
    const batches = shuffledBatches(trainSet.indices.length, Math.min(batchSize, trainSet.indices.length), epochs, seed);
    trainLinearHead(head, trainSet.features, trainSet.labels!, batches, {
      lr: ((o.baseLr ?? 0.1) * batchSize) / 256, warmupSteps: Math.round(batches.length * 0.1),
    });
    return evaluateHead(head, testSet.features, testY, numClasses);
  } finally {
    for (const t of [trainSet, testSet]) t.dispose();
    testY.dispose();
    head.dispose();
  }
}

/** The confusion matrix as a PNG: one square per (true row, predicted column), shaded by the row's fraction (white 0, dark blue 1). */
export async function confusionMatrixPng(confusion: Int32Array, numClasses: number, options: { cell?: number } = {}): Promise<Buffer> {
  if (confusion.length !== numClasses * numClasses) throw new RangeError(`Expected ${numClasses * numClasses} confusion counts for ${numClasses} classes but received ${confusion.length}`);
  const cell = options.cell ?? Math.max(4, Math.min(48, Math.floor(640 / numClasses)));
  const side = numClasses * cell + 2;
  const canvas = new Uint8Array(side * side * 3).fill(255);
  for (let r = 0; r < numClasses; r++) {
    let total = 0;
    for (let c = 0; c < numClasses; c++) total += confusion[r * numClasses + c]!;
    for (let c = 0; c < numClasses; c++) {
      const f = total === 0 ? 0 : confusion[r * numClasses + c]! / total;
      const rgb = [255 * (1 - f) + 8 * f, 255 * (1 - f) + 48 * f, 255 * (1 - f) + 107 * f];
      for (let y = 1; y < cell; y++) {
        for (let x = 1; x < cell; x++) {
          const p = ((1 + r * cell + y) * side + 1 + c * cell + x) * 3;
          canvas[p] = rgb[0]!;
          canvas[p + 1] = rgb[1]!;
          canvas[p + 2] = rgb[2]!;
        }
      }
    }
  }
  return sharp(Buffer.from(canvas.buffer), { raw: { width: side, height: side, channels: 3 } }).png().toBuffer();
}

/** Class indices of the test set in the train set's numbering; one error listing every test class the train set lacks. */
export function matchTestClasses(train: ImageDataset, test: ImageDataset): { numClasses: number; classes: string[] | null; testLabels: Int32Array } {
  for (const [d, flagName] of [[train, '--train'], [test, '--test']] as const) {
    if (d.labels === null) throw new Error(`Expected a labelled dataset (an IDX file with its labels file beside it, or an image folder with one sub-folder per class) for ${flagName} but received ${d.describe}`);
  }
  const trainLabels = train.labels!;
  const testLabels = test.labels!;
  if ((train.classes === null) !== (test.classes === null)) {
    throw new Error(`Cannot match the classes of ${train.describe} (--train) with those of ${test.describe} (--test): give both as IDX files or both as image folders`);
  }
  if (train.classes !== null) {
    const index = new Map(train.classes.map((c, i) => [c, i]));
    const unknown = test.classes!.filter((c) => !index.has(c));
    if (unknown.length > 0) throw new Error(`The test set has ${unknown.length} classes the training set lacks: ${unknown.map((c) => JSON.stringify(c)).join(', ')} (training classes: ${train.classes.join(', ')})`);
    const map = test.classes!.map((c) => index.get(c)!);
    return { numClasses: train.classes.length, classes: [...train.classes], testLabels: Int32Array.from(testLabels, (y) => map[y]!) };
  }
  const present = new Set(trainLabels);
  const unknown = [...new Set(testLabels)].filter((y) => !present.has(y)).sort((a, b) => a - b);
  if (unknown.length > 0) throw new Error(`The test set has ${unknown.length} classes the training set lacks: ${unknown.join(', ')} (training classes: ${[...present].sort((a, b) => a - b).join(', ')})`);
  return { numClasses: Math.max(...trainLabels) + 1, classes: null, testLabels: Int32Array.from(testLabels) };
}

export type ProbeMode = 'cached' | 'augmented';

export interface LinearProbeOptions {
  /** An ExtreMA checkpoint: this project's .safetensors or the authors' .pth. */
  checkpoint: string;
  /** IDX file or image folder (class = sub-folder), for training and for testing. */
  train: string;
  test: string;
  /** Run folder for metrics.json, confusion.png, head.safetensors and log.jsonl. */
  out: string;
  mode?: ProbeMode;
  which?: 'teacher' | 'student';
  /** attention heads of a .pth model (default width / 64) */
  heads?: number;
  device?: string;
  /** default 20 (cached) or 90 (augmented) */
  epochs?: number;
  /** default: 10% of the epochs (cached), 10 of 90 (augmented) */
  warmupEpochs?: number;
  batchSize?: number;
  /** lr = baseLr x batchSize / 256 (default 0.1) */
  baseLr?: number;
  momentum?: number;
  weightDecay?: number;
  /** LARS instead of SGD */
  lars?: boolean;
  seed?: number;
  /** images per encoder pass when extracting features (default 256) */
  embedBatchSize?: number;
  /** use only the first n images of each set (0: all) */
  limit?: number;
  /** Packed Linear layers in the frozen encoder (see EmbedOptions.packWeights); default true */
  packWeights?: boolean;
  onEvent?: (message: string) => void;
  onStep?: (step: number, total: number, loss: number) => void;
}

export interface LinearProbeResult {
  metrics: ProbeMetrics;
  classes: string[] | null;
  losses: number[];
  files: { metrics: string; confusion: string; head: string; log: string };
  seconds: number;
}

/** `extrema linprobe`: trains and tests the head, writes the run folder. */
export async function linearProbe(o: LinearProbeOptions): Promise<LinearProbeResult> {
  const started = performance.now();
  const mode = o.mode ?? 'cached';
  if (mode !== 'cached' && mode !== 'augmented') fail('"cached" or "augmented"', '"mode" of linearProbe', mode);
  const device = assertDevice(o.device ?? 'cpu', '--device');
  const epochs = positiveInt(o.epochs ?? (mode === 'cached' ? 20 : 90), '--epochs');
  // The authors' 10 of 90 epochs and the cached recipe's 10% are both a fraction of the run.
  const warmupEpochs = o.warmupEpochs ?? epochs * (mode === 'cached' ? 0.1 : 1 / 9);
  const batchSize = positiveInt(o.batchSize ?? 256, '--batch-size');
  const lr = ((o.baseLr ?? 0.1) * batchSize) / 256;
  const seed = o.seed ?? 0;
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, device, which: o.which });
  let log: RunLog | null = null;
  let head: Sequential | null = null;
  const owned: Tensor[] = [];
  try {
    const [size, width] = config.encoder.imgSize;
    if (size !== width) throw new RangeError(`linprobe supports square model inputs; this model takes ${size}x${width}`);
    const channels = config.encoder.inChans;
    if (channels !== 1 && channels !== 3) throw new RangeError(`linprobe reads images with 1 or 3 channels; this model takes ${channels}`);
    const norm = defaultNormalization(channels);
    const limit = o.limit ?? 0;
    const trainData = openDataset(o.train, { size, channels, limit });
    const testData = openDataset(o.test, { size, channels, limit });
    const { numClasses, classes, testLabels } = matchTestClasses(trainData, testData);
    const stepsPerEpoch = Math.floor(trainData.count / batchSize);
    if (stepsPerEpoch === 0) throw new RangeError(`The training set has ${trainData.count} images, fewer than one batch of ${batchSize}`);
    const totalSteps = stepsPerEpoch * epochs;
    const warmupSteps = Math.round(warmupEpochs * stepsPerEpoch);
    if (!(warmupSteps >= 0 && warmupSteps < totalSteps)) throw new RangeError(`Expected fewer warmup epochs than epochs for linprobe but received ${warmupEpochs} warmup of ${epochs}`);
    // Only a run whose inputs all check out gets a run folder.
    fs.mkdirSync(o.out, { recursive: true });
    const runLog = (log = new RunLog(path.join(o.out, 'log.jsonl'), null));
    o.onEvent?.(`train: ${trainData.describe}\ntest: ${testData.describe}\n${numClasses} classes, ${mode} mode, ${o.which ?? 'teacher'} encoder`);
    const embed = async (data: ImageDataset) => {
      const e = await embedDataset(encoder, data, { batchSize: o.embedBatchSize ?? 256, device, instanceNorm: false, packWeights: o.packWeights, ...norm });
      owned.push(e.features);
      if (e.labels !== null) owned.push(e.labels);
      return e;
    };
    const test = await embed(testData);
    const testY = fromTypedArray(BigInt64Array.from(test.indices, (i) => BigInt(testLabels[i]!)), [test.indices.length]).to({ device }).keep();
    owned.push(testY);
    head = linearProbeHead(encoder.embedDim, numClasses, { seed }).to(device);
    const evaluate = () => evaluateHead(head!, test.features, testY, numClasses);
    let epochLoss = 0;
    const training: HeadTrainingOptions = {
      lr, warmupSteps, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 0, lars: o.lars ?? false,
      onStep: (step, loss, stepLr) => {
        epochLoss += loss;
        runLog.write({ kind: 'step', iteration: step + 1, epoch: Math.floor(step / stepsPerEpoch), loss, lr: stepLr });
        o.onStep?.(step, totalSteps, loss);
        if ((step + 1) % stepsPerEpoch === 0) {
          const m = evaluate();
          runLog.write({ kind: 'epoch', iteration: step + 1, epoch: (step + 1) / stepsPerEpoch - 1, loss: epochLoss / stepsPerEpoch, top1: m.top1, top5: m.top5 });
          epochLoss = 0;
        }
      },
    };
    let losses: number[];
    if (mode === 'cached') {
      const train = await embed(trainData);
      losses = trainLinearHead(head, train.features, train.labels!, shuffledBatches(train.indices.length, batchSize, epochs, seed), training);
    } else {
      // The frozen encoder runs every batch of every epoch: its packed copy is worth the most here.
      losses = await withPackedLinears(encoder, o.packWeights ?? true,
        () => trainAugmented(encoder, head!, trainData, { batchSize, epochs, seed, device, norm, totalSteps, training }));
    }
    const metrics = evaluate();
    runLog.write({ kind: 'event', iteration: totalSteps, event: 'test', top1: metrics.top1, top5: metrics.top5 });
    const files = {
      metrics: path.join(o.out, 'metrics.json'), confusion: path.join(o.out, 'confusion.png'),
      head: path.join(o.out, 'head.safetensors'), log: path.join(o.out, 'log.jsonl'),
    };
    const info = {
      checkpoint: path.resolve(o.checkpoint), encoder: o.which ?? 'teacher', train: path.resolve(o.train), test: path.resolve(o.test),
      mode, optimizer: o.lars ? 'lars' : 'sgd', epochs, batchSize, lr, warmupSteps, totalSteps, seed, numClasses, feature: 'class token before the final norm',
    };
    const seconds = (performance.now() - started) / 1000;
    const perClass = metrics.perClass.map((accuracy, i) => ({ class: classes?.[i] ?? String(i), accuracy, count: metrics.confusion.slice(i * numClasses, (i + 1) * numClasses).reduce((a, b) => a + b, 0) }));
    const summary = { ...info, top1: metrics.top1, top5: metrics.top5, testCount: metrics.count, perClass, finalLoss: losses[losses.length - 1], seconds };
    writeFileAtomic(files.metrics, Buffer.from(`${JSON.stringify(summary, null, 2)}\n`));
    writeFileAtomic(files.confusion, await confusionMatrixPng(metrics.confusion, numClasses));
    saveLinearHead(files.head, head, { classes, mean: norm.mean, std: norm.std, metadata: Object.fromEntries(Object.entries(info).map(([k, v]) => [k, String(v)])) });
    return { metrics, classes, losses, files, seconds };
  } finally {
    log?.close();
    for (const t of owned) t.dispose();
    head?.dispose();
    encoder.dispose();
  }
}

interface AugmentedRun {
  batchSize: number;
  epochs: number;
  seed: number;
  device: Device;
  norm: Normalization;
  totalSteps: number;
  training: HeadTrainingOptions;
}

// RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, as torchvision's defaults in main_lincls) + horizontal flip of every batch.
// Cropping the normalised images equals normalising the crops: bilinear sampling inside the image is linear.
async function trainAugmented(encoder: VisionTransformer, head: Sequential, data: ImageDataset, r: AugmentedRun): Promise<number[]> {
  const loader = new DataLoader(data, { mode: 'train', batchSize: r.batchSize, seed: r.seed, device: r.device });
  const g = Generator.create(r.seed + 1);
  const trainer = new HeadTrainer(head, r.totalSteps, r.training);
  const losses: number[] = [];
  encoder.eval();
  try {
    for (let epoch = 0; epoch < r.epochs; epoch++) {
      for await (const step of loader.steps(epoch)) {
        for await (const batch of step.batches) {
          try {
            losses.push(scope(() => {
              const [b, , h, w] = batch.images.shape as [number, number, number, number];
              const boxes = randomResizedCropBoxes(b, h, w, [0.08, 1], [3 / 4, 4 / 3], g);
              const flips = randint(0, 2, [b], { generator: g }).toTypedArray<'int64'>();
              const features = noGrad(() => {
                const views = resizedCrop(normalizeImages(batch.images, r.norm), boxes, h, Array.from(flips, Number));
                return encoder.encode(views, { instanceNorm: false }).instance;
              });
              return trainer.train(features, batch.labels!);
            }));
          } finally {
            batch.images.dispose();
            batch.labels?.dispose();
          }
        }
      }
    }
    return losses;
  } finally {
    trainer.dispose();
  }
}

/** Saves a trained head (atomically) with its classes and the normalisation of its inputs. */
export function saveLinearHead(file: string, head: Sequential, info: { classes: readonly string[] | null; mean: readonly number[]; std: readonly number[]; metadata?: Record<string, string> }): void {
  const tensors = new Map([...head.stateDict()].map(([k, v]) => [`head.${k}`, v]));
  writeFileAtomic(file, serializeSafetensors(tensors, {
    ...info.metadata, format: HEAD_FORMAT, classes: JSON.stringify(info.classes), mean: JSON.stringify(info.mean), std: JSON.stringify(info.std),
  }));
}

/** Reads a head written by saveLinearHead. */
export function loadLinearHead(file: string): { head: Sequential; classes: string[] | null; metadata: Record<string, string> } {
  const content = parseSafetensors(fs.readFileSync(file), file);
  try {
    if (content.metadata.format !== HEAD_FORMAT) throw new Error(`${file} is not a linear-probe head (format "${content.metadata.format ?? '(none)'}", expected "${HEAD_FORMAT}")`);
    const weight = content.tensors.get('head.1.weight');
    if (weight === undefined || weight.ndim !== 2) throw new Error(`${file} has no head.1.weight matrix`);
    const [numClasses, dim] = weight.shape as [number, number];
    const head = linearProbeHead(dim, numClasses);
    const state = new Map([...content.tensors].map(([k, v]) => [k.replace(/^head\./, ''), v]));
    head.loadStateDict(state);
    return { head: head.eval(), classes: JSON.parse(content.metadata.classes ?? 'null') as string[] | null, metadata: content.metadata };
  } finally {
    for (const t of content.tensors.values()) t.dispose();
  }
}
