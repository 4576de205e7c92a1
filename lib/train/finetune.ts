// Fine-tuning a classifier (the authors' finetune/run_class_finetuning.py,
// BEiT's), top to bottom: set up the run (below), then for each optimizer
// step: lr schedule, `accumulate` micro-batches of augment, mix, forward,
// backward, the AdamW step (layer-wise lr decay) and the optional weight EMA;
// per epoch: top-1/top-5 on the test set, checkpoint, plots. Every random
// draw comes from generators whose states are checkpointed, so a resumed run
// continues bit for bit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { classifierFrom, saveClassifier, loadClassifier } from '../eval/classifier-checkpoint';
import type { VitClassifier } from '../nn/vit-classifier';
import { layerDecayParamGroups } from '../optim/layer-decay';
import { AdamW } from '../optim/adamw';
import { warmupCosine, scaledLr } from '../optim/schedule';
import { clipGradNorm } from '../optim/clip';
import { emaUpdate } from '../extrema/ema';
import { openDataset, type ImageDataset } from '../data/dataset';
import { DataLoader, disposeBatch, type Batch } from '../data/loader';
import { labelFractionSubset, subsetDataset } from '../data/subset';
import { randomResizedCropBoxes, resizedCrop } from '../data/augment';
import { colorJitter, drawUniform, normalize } from '../data/color';
import { defaultNormalization, normalizeImages } from '../data/preprocess';
import { mixupCutmix, softTargetCrossEntropy } from '../data/mixup';
import { parseRandAugment, randAugment, type RandAugmentConfig } from '../data/rand-augment';
import { randomErasing } from '../data/random-erasing';
import { crossEntropy } from '../tensor/functional';
import { Generator } from '../runtime/generator';
import { autocast, synchronize } from '../runtime/device-runtime';
import { noGrad } from '../autograd';
import { PendingLosses, addInto } from './loss-readback';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { Device } from '../tensor/device';
import { removeStaleTempFiles, writeFileAtomic } from '../io/fs';
import { finetuneConfig, type FinetuneConfig, type FinetuneConfigInput } from './finetune-config';
import { RunLog } from '../io/run-log';
import { TrainingError } from './pretrain';
import type { RunPosition } from './state';
import { writeRunPlots } from './run-plots';
import { writeChart } from './plot';

export const FINETUNE_CHECKPOINT = 'checkpoint.safetensors';
/** The fine-tuned model alone (timm key names, no training state): what `extrema predict` and timm load. */
export const CLASSIFIER_FILE = 'classifier.safetensors';
export const SUBSET_FILE = 'label-subset.json';

export interface FinetuneHooks {
  onStep?: (r: { epoch: number; step: number; iteration: number; loss: number; lr: number; imagesPerSecond: number; stepsPerEpoch: number }) => void;
  onEpoch?: (r: { epoch: number; top1: number | null; top5: number | null; seconds: number }) => void;
  onMessage?: (line: string) => void;
}

export interface FinetuneOptions {
  /** 'auto' (default): continue from the run folder's checkpoint if there is one; 'never': start over; or a checkpoint file. */
  resume?: string;
  /** Stop, with a checkpoint, once this many optimizer steps are done in total. */
  stopAfterIterations?: number;
}

export interface FinetuneResult {
  config: FinetuneConfig;
  out: string;
  iterations: number;
  losses: number[];
  /** Test accuracy after the last epoch (null without a test set or when stopped early). */
  top1: number | null;
  top5: number | null;
  checkpoint: string;
  /** classifier.safetensors, written at the end of a complete run (null when stopped early). */
  classifier: string | null;
  plots: string[];
}

/** What a step reports once its loss is read back. */
interface StepRecord { epoch: number; t: number; step: number; iteration: number; lr: number; images: number; seconds: number }

export async function finetune(input: FinetuneConfigInput | FinetuneConfig, hooks: FinetuneHooks = {}, options: FinetuneOptions = {}): Promise<FinetuneResult> {
  const cfg = finetuneConfig(input as FinetuneConfigInput);
  const say = hooks.onMessage ?? (() => {});
  const run = setUpFinetune(cfg, options.resume ?? 'auto', say);
  const { loader, model, optimizer, log } = run;
  const stepsPerEpoch = loader.stepsPerEpoch();
  const stopAfter = options.stopAfterIterations ?? Infinity;
  let position = run.position;
  const losses: number[] = [];
  // A resumed run's epoch mean includes the steps taken before it stopped (from the log, which ends at the checkpoint).
  let epochLosses = RunLog.read(log.file).filter((r) => r.kind === 'step' && Math.ceil(r.iteration / stepsPerEpoch) - 1 === position.epoch && position.step > 0).map((r) => r.loss as number);
  const firstEpoch = position.epoch;
  // On an accelerator the loss is read every cfg.lossEvery steps, so the host queues steps ahead of the GPU.
  const pending = new PendingLosses<StepRecord>(cfg.device === 'cpu' ? 1 : cfg.lossEvery);
  const report = (read: Array<{ loss: number; record: StepRecord }>) => {
    for (const { loss, record: r } of read) {
      if (!Number.isFinite(loss)) {
        const last = fs.existsSync(run.checkpoint) ? run.checkpoint : '(none yet)';
        throw new TrainingError(`The loss is ${loss} at epoch ${r.epoch}, step ${r.step} (iteration ${r.iteration}); stopping. The last good checkpoint is ${last}. Lower the learning rate or enable --clip-grad.`);
      }
      losses.push(loss);
      epochLosses.push(loss);
      log.write({ kind: 'step', iteration: r.iteration, epoch: r.t, loss, lr: r.lr });
      hooks.onStep?.({ epoch: r.epoch, step: r.step, iteration: r.iteration, loss, lr: r.lr, imagesPerSecond: r.images / r.seconds, stepsPerEpoch });
    }
  };
  let accuracy: { top1: number; top5: number } | null = null;
  try {
    for (let epoch = position.epoch; epoch < cfg.epochs; epoch++) {
      const started = performance.now();
      let images = 0;
      if (epoch !== firstEpoch) epochLosses = [];
      model.train();
      for await (const { step, batches } of loader.steps(epoch, epoch === position.epoch ? position.step : 0)) {
        // Per-iteration lr on fractional epochs (MAE's adjust_learning_rate, as pretraining). BEiT's
        // cosine_scheduler tabulates the same curve with np.linspace(0, base, warmup_iters), whose
        // warmup reaches the peak one iteration earlier; the difference is within one step's lr.
        const t = position.iteration / stepsPerEpoch;
        optimizer.setLr(warmupCosine(t, { base: run.lr, warmupSteps: cfg.warmupEpochs, totalSteps: cfg.epochs, final: cfg.minLr }));
        let loss: Tensor | null = null;
        for await (const batch of batches) {
          const l = backward(run, batch);
          loss = loss === null ? l : addInto(loss, l);
          images += batch.indices.length;
        }
        if (loss === null) continue;
        if (cfg.clipGrad !== null) clipGradNorm(model.parameters().filter((p) => p.requiresGrad), cfg.clipGrad);
        optimizer.step();
        optimizer.zeroGrad();
        if (run.ema !== null) emaUpdate(run.ema.tensors, run.emaSources, cfg.ema!);
        position = { epoch, step: step + 1, iteration: position.iteration + 1 };
        pending.push(loss, { epoch, t, step: step + 1, iteration: position.iteration, lr: run.peakGroupLr(), images, seconds: (performance.now() - started) / 1000 });
        loss.dispose();
        const stopping = position.iteration >= stopAfter;
        // a checkpoint is only written after its steps' losses were read (a NaN stops the run first)
        if (pending.due || stopping || position.step === stepsPerEpoch) report(pending.take());
        if (stopping) {
          if (position.step === stepsPerEpoch) position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
          saveFinetuneCheckpoint(run, position);
          return { config: cfg, out: cfg.out, iterations: position.iteration, losses, top1: null, top5: null, checkpoint: run.checkpoint, classifier: null, plots: await writeFinetunePlots(cfg.out) };
        }
      }
      report(pending.take());
      if (cfg.device !== 'cpu') synchronize(cfg.device);
      position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
      const last = epoch + 1 === cfg.epochs;
      let evaluated = {};
      if (run.test !== null) {
        const e = await evaluateClassifier(model, run.test, { batchSize: cfg.batchSize, device: cfg.device, size: run.size, workers: cfg.workers });
        accuracy = { top1: e.top1, top5: e.top5 };
        const ema = run.ema === null ? null : await evaluateClassifier(run.ema.model, run.test, { batchSize: cfg.batchSize, device: cfg.device, size: run.size, workers: cfg.workers });
        evaluated = { ...accuracy, ...(ema === null ? {} : { emaTop1: ema.top1, emaTop5: ema.top5 }) };
      }
      const seconds = (performance.now() - started) / 1000;
      log.write({ kind: 'epoch', iteration: position.iteration, epoch: epoch + 1, seconds, meanLoss: mean(epochLosses), ...evaluated });
      if (last || (epoch + 1) % cfg.checkpointEvery === 0) saveFinetuneCheckpoint(run, position);
      await writeFinetunePlots(cfg.out);
      hooks.onEpoch?.({ epoch: epoch + 1, top1: accuracy?.top1 ?? null, top5: accuracy?.top5 ?? null, seconds });
    }
    if (accuracy === null && run.test !== null && position.iteration === run.position.iteration) {
      // A run resumed after its last epoch: report the accuracy of the weights it holds.
      const e = await evaluateClassifier(model, run.test, { batchSize: cfg.batchSize, device: cfg.device, size: run.size, workers: cfg.workers });
      accuracy = { top1: e.top1, top5: e.top5 };
    }
    const classifier = path.join(cfg.out, CLASSIFIER_FILE);
    saveClassifier(classifier, model, { classes: run.classes, metadata: { finetune: JSON.stringify(cfg) } });
    if (run.ema !== null) saveClassifier(path.join(cfg.out, 'classifier-ema.safetensors'), run.ema.model, { classes: run.classes, metadata: { finetune: JSON.stringify(cfg) } });
    const plots = await writeFinetunePlots(cfg.out);
    say(`done: ${classifier}; plots ${plots.join(', ')}`);
    return { config: cfg, out: cfg.out, iterations: position.iteration, losses, top1: accuracy?.top1 ?? null, top5: accuracy?.top5 ?? null, checkpoint: run.checkpoint, classifier, plots };
  } finally {
    pending.dispose();
    run.dispose();
  }
}

/** One micro-batch: augment and mix on the device, forward, backward; returns its loss / accumulate, detached, on the device. */
function backward(run: FinetuneRun, batch: Batch): Tensor {
  const { cfg, model } = run;
  try {
    return scope(() => {
      const { images, targets } = augmentBatch(run, batch);
      const forward = () => {
        const logits = model.forward(images);
        // Mixed batches carry soft targets (smoothing included); plain ones the labels.
        return targets.dtype === 'int64' ? crossEntropy(logits, targets, { labelSmoothing: cfg.augment.labelSmoothing }) : softTargetCrossEntropy(logits, targets);
      };
      const l = cfg.precision === 'bf16' ? autocast(cfg.device, 'bfloat16', forward) : forward();
      const share = cfg.accumulate === 1 ? l : l.div(cfg.accumulate);
      share.backward();
      return share.detach();
    });
  } finally {
    disposeBatch(batch);
  }
}

/**
 * timm's training transform, batched: RandomResizedCrop + flip, then
 * RandAugment (or, without it, colour jitter: timm applies jitter only when
 * there is no auto-augment policy), normalisation, random erasing (on the
 * normalised images, per image, as timm's RandomErasing after Normalize), and
 * mixup/cutmix over the batch. Returns soft targets when mixing, else the labels.
 */
function augmentBatch(run: FinetuneRun, batch: Batch): { images: Tensor; targets: Tensor } {
  const { cfg, size, generators } = run;
  const a = cfg.augment;
  const g = generators.augment!;
  const host = generators.augmentHost ?? g;
  if (batch.labels === null) throw new Error('Expected labelled training images for fine-tuning but a batch has no labels');
  const x = batch.images.float();
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const boxes = randomResizedCropBoxes(b, h, w, a.scale, [3 / 4, 4 / 3], host);
  const flips = drawUniform([b], x.device, g).lt(a.flipP);
  let y = resizedCrop(x, boxes, size, flips).div_(255);
  if (run.randAugment !== null) y = randAugment(y, run.randAugment, host);
  else if (a.colorJitter > 0 && c === 3) y = colorJitter(y, { brightness: a.colorJitter, contrast: a.colorJitter, saturation: a.colorJitter, hue: 0, p: 1 }, g, host);
  else if (a.colorJitter > 0) y = colorJitter(y, { brightness: a.colorJitter, contrast: a.colorJitter, saturation: 0, hue: 0, p: 1 }, g, host);
  const norm = defaultNormalization(c);
  y = normalize(y, norm.mean, norm.std);
  if (a.reprob > 0) y = randomErasing(y, a.reprob, g, host);
  if (a.mixupProb > 0 && (a.mixup > 0 || a.cutmix > 0)) {
    return mixupCutmix(y, batch.labels, { mixupAlpha: a.mixup, cutmixAlpha: a.cutmix, switchProb: a.switchProb, prob: a.mixupProb, labelSmoothing: a.labelSmoothing, numClasses: run.numClasses }, host);
  }
  return { images: y, targets: batch.labels };
}

export interface EvaluateOptions {
  batchSize?: number;
  device?: Device;
  /** The model's input side; items larger than it are centre-cropped (default: the items' size). */
  size?: number;
  workers?: number;
}

/** Top-1 and top-5 accuracy of a classifier on a labelled dataset (eval mode, no grad, items in order). */
export async function evaluateClassifier(model: VitClassifier, data: ImageDataset, o: EvaluateOptions = {}): Promise<{ top1: number; top5: number; count: number }> {
  if (data.labels === null) throw new Error(`Expected labelled test images but ${data.path} has no labels`);
  const loader = new DataLoader(data, { mode: 'eval', batchSize: o.batchSize ?? 256, device: o.device ?? 'cpu', concurrency: o.workers ?? 8 });
  const size = o.size ?? data.size;
  const k = Math.min(5, model.numClasses);
  const wasTraining = model.training;
  model.eval();
  let top1 = 0;
  let top5 = 0;
  let count = 0;
  try {
    for await (const batch of loader.batches()) {
      try {
        const [c1, c5] = scope(() => noGrad(() => {
          const off = Math.round((data.size - size) / 2);
          const crop = off === 0 ? batch.images : batch.images.narrow(2, off, size).narrow(3, off, size);
          const logits = model.forward(normalizeImages(crop));
          const { indices: idx } = logits.topk(k, 1);
          const hit = idx.eq(batch.labels!.view(-1, 1));
          return [hit.narrow(1, 0, 1).sum().item(), hit.sum().item()];
        }));
        top1 += c1;
        top5 += c5;
        count += batch.indices.length;
      } finally {
        disposeBatch(batch);
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return { top1: top1 / Math.max(count, 1), top5: top5 / Math.max(count, 1), count };
}

// ---- the run ----------------------------------------------------------------------

interface FinetuneRun {
  cfg: FinetuneConfig;
  model: VitClassifier;
  optimizer: AdamW;
  loader: DataLoader;
  test: ImageDataset | null;
  classes: string[] | null;
  numClasses: number;
  /** The model's input side. */
  size: number;
  randAugment: RandAugmentConfig | null;
  generators: Record<string, Generator>;
  ema: { model: VitClassifier; tensors: Tensor[] } | null;
  emaSources: Tensor[];
  /** Peak lr: base x images per step / 256. */
  lr: number;
  peakGroupLr(): number;
  checkpoint: string;
  log: RunLog;
  position: RunPosition;
  dispose(): void;
}

const OPT = 'optimizer.';
const RNG = 'rng.';
const EMA = 'ema.';

function setUpFinetune(cfg: FinetuneConfig, resume: string, say: (line: string) => void): FinetuneRun {
  fs.mkdirSync(cfg.out, { recursive: true });
  for (const name of removeStaleTempFiles(cfg.out)) say(`removed ${path.join(cfg.out, name)}, left by a write that was killed`);
  writeFileAtomic(path.join(cfg.out, 'config.json'), Buffer.from(`${JSON.stringify(cfg, null, 2)}\n`));

  // The classes come from the training set, before the model (whose head they size) and its input size exist.
  const listed = openDataset(cfg.train, { size: 1, limit: cfg.trainLimit });
  if (listed.labels === null) throw new Error(`Expected labelled training images (an IDX file with its labels file beside it, or a folder with one sub-folder per class) but ${cfg.train} has no labels`);
  const classes = listed.classes === null ? null : [...listed.classes];
  const numClasses = classes?.length ?? listed.labels.reduce((m, l) => Math.max(m, l + 1), 0);

  const model = classifierFrom(cfg.from, { numClasses, encoder: cfg.encoder, dropPathRate: cfg.dropPath, which: cfg.which, ...(cfg.numHeads === null ? {} : { numHeads: cfg.numHeads }), seed: cfg.seed });
  const disposers: (() => void)[] = [() => model.dispose()];
  try {
    const enc = model.config.encoder;
    const size = enc.imgSize[0];
    if (enc.imgSize[1] !== size) throw new RangeError(`finetune needs a square input size but the model takes ${enc.imgSize.join('x')}`);
    const channels = enc.inChans === 1 ? 1 : 3;
    // timm's eval transform: resize to floor(size / crop_pct), centre-crop size. The training
    // images are read at the same size (the loader's items are square) and RandomResizedCrop
    // works on that centre square, where timm would crop from the whole image.
    const readSize = cfg.evalCropPct === 1 ? size : Math.floor(size / cfg.evalCropPct);
    let train = openDataset(cfg.train, { size: readSize, channels, limit: cfg.trainLimit });
    if (cfg.labelFraction < 1) {
      const subset = labelFractionSubset(train, { fraction: cfg.labelFraction, seed: cfg.seed, file: path.join(cfg.out, SUBSET_FILE) });
      train = subsetDataset(train, subset.indices);
      say(`labels: ${subset.indices.length} images (${(cfg.labelFraction * 100).toPrecision(3)}% per class), listed in ${path.join(cfg.out, SUBSET_FILE)}`);
    }
    const test = cfg.test === null ? null : openTestSet(cfg.test, { size: readSize, channels, limit: cfg.testLimit }, classes, numClasses);
    const loader = new DataLoader(train, {
      mode: 'train', batchSize: cfg.batchSize, accumulate: cfg.accumulate, seed: cfg.seed, device: cfg.device, concurrency: cfg.workers, strict: cfg.strict,
      onSkip: (name, e) => say(`skipped ${name}: ${e.message}`),
    });
    say(`data: ${train.describe}; ${numClasses} classes; ${loader.stepsPerEpoch()} steps per epoch of ${cfg.batchSize * cfg.accumulate} images`);

    model.to(cfg.device);
    const lr = scaledLr(cfg.baseLr, cfg.batchSize * cfg.accumulate);
    const optimizer = new AdamW(layerDecayParamGroups(model, { weightDecay: cfg.weightDecay, layerDecay: cfg.layerDecay }), { lr, betas: cfg.betas, weightDecay: cfg.weightDecay });
    disposers.push(() => optimizer.dispose());
    const maxScale = Math.max(...optimizer.groups.map((g) => g.lrScale));
    const generators: Record<string, Generator> = {
      augment: Generator.create(cfg.seed + 1, cfg.device),
      // Drop path draws from the device's default generator.
      default: Generator.default(cfg.device).manualSeed(cfg.seed + 3),
      // On a GPU the draws read back to JS (crops, RandAugment, erasing boxes,
      // mixup, the jitter order) come from a CPU generator: no host sync.
      ...(cfg.device === 'cpu' ? {} : { augmentHost: Generator.create(cfg.seed + 4, 'cpu') }),
    };
    let ema: FinetuneRun['ema'] = null;
    let emaSources: Tensor[] = [];
    if (cfg.ema !== null) {
      const copy = classifierFrom('none', { numClasses, encoder: enc, dropPathRate: 0, seed: cfg.seed });
      disposers.push(() => copy.dispose());
      copy.loadStateDict(model.stateDict());
      copy.to(cfg.device).eval().requiresGrad_(false);
      const floats = [...model.stateDict()].filter(([, t]) => t.dtype === 'float32' || t.dtype === 'float64');
      const own = copy.stateDict();
      ema = { model: copy, tensors: floats.map(([k]) => own.get(k)!) };
      emaSources = floats.map(([, t]) => t);
    }
    const checkpoint = path.join(cfg.out, FINETUNE_CHECKPOINT);
    const resumeFrom = resume === 'auto' ? (fs.existsSync(checkpoint) ? checkpoint : null) : resume === 'never' ? null : resume;
    const run: FinetuneRun = {
      cfg, model, optimizer, loader, test, classes, numClasses, size, generators, ema, emaSources, lr, checkpoint,
      randAugment: cfg.augment.randAugment === null ? null : parseRandAugment(cfg.augment.randAugment),
      peakGroupLr: () => (optimizer.groups.find((g) => g.lrScale === maxScale)?.lr ?? 0),
      log: null as unknown as RunLog,
      position: { epoch: 0, step: 0, iteration: 0 },
      dispose() {
        run.log?.close();
        for (const d of disposers.reverse()) d();
      },
    };
    if (resumeFrom !== null) {
      run.position = loadFinetuneCheckpoint(resumeFrom, run);
      say(`resumed from ${resumeFrom} at epoch ${run.position.epoch}, step ${run.position.step} (iteration ${run.position.iteration})`);
    }
    run.log = new RunLog(path.join(cfg.out, 'log.jsonl'), resumeFrom === null ? null : run.position.iteration);
    return run;
  } catch (e) {
    for (const d of disposers.reverse()) d();
    throw e;
  }
}

/** The test set with its labels in the training set's class order; a class the training set lacks is an error naming it. */
function openTestSet(source: string, o: { size: number; channels: 1 | 3; limit: number }, classes: string[] | null, numClasses: number): ImageDataset {
  const test = openDataset(source, o);
  if (test.labels === null) throw new Error(`Expected labelled test images but ${source} has no labels`);
  if (classes !== null && test.classes !== null) {
    const unknown = test.classes.filter((c) => !classes.includes(c));
    if (unknown.length > 0) throw new RangeError(`The test set ${source} has classes the training set lacks: ${unknown.map((c) => `"${c}"`).join(', ')} (training classes: ${classes.join(', ')})`);
    const map = test.classes.map((c) => classes.indexOf(c));
    return { ...test, labels: Int32Array.from(test.labels, (l) => map[l]!) };
  }
  const bad = test.labels.findIndex((l) => l < 0 || l >= numClasses);
  if (bad >= 0) throw new RangeError(`The test set ${source} has label ${test.labels[bad]} (item ${bad}) but the training set has classes 0..${numClasses - 1} only`);
  return test;
}

function saveFinetuneCheckpoint(run: FinetuneRun, position: RunPosition): void {
  const extra = new Map<string, Tensor>();
  const opt = run.optimizer.stateDict();
  for (const [k, t] of opt.state) extra.set(OPT + k, t);
  const owned: Tensor[] = [...opt.state.values()];
  for (const [name, g] of Object.entries(run.generators)) {
    const state = g.getState();
    owned.push(state);
    extra.set(RNG + name, state);
  }
  if (run.ema !== null) for (const [k, t] of run.ema.model.stateDict()) extra.set(EMA + k, t);
  try {
    saveClassifier(run.checkpoint, run.model, {
      classes: run.classes,
      metadata: { position: JSON.stringify(position), optimizer: JSON.stringify(opt.groups), finetune: JSON.stringify(run.cfg) },
      extra,
    });
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** Restores what saveFinetuneCheckpoint wrote into the run's model, optimizer, generators and EMA; returns where to continue. */
function loadFinetuneCheckpoint(file: string, run: FinetuneRun): RunPosition {
  const saved = loadClassifier(file, { device: run.cfg.device });
  try {
    const need = (key: string) => {
      const v = saved.metadata[key];
      if (v === undefined) throw new Error(`${file} is a classifier without training state ("${key}" missing); start a new run from it instead of resuming`);
      return JSON.parse(v) as unknown;
    };
    const position = need('position') as RunPosition;
    const groups = need('optimizer');
    try {
      run.model.loadStateDict(saved.model.stateDict());
    } catch (e) {
      throw new Error(`Cannot resume from ${file}: it holds a different classifier than this run builds (${(e as Error).message.split('\n')[0]}); use --resume never or another --out`, { cause: e });
    }
    const optState = new Map<string, Tensor>();
    for (const [k, t] of saved.extra) if (k.startsWith(OPT)) optState.set(k.slice(OPT.length), t);
    run.optimizer.loadStateDict({ state: optState, groups } as ReturnType<AdamW['stateDict']>);
    for (const [name, g] of Object.entries(run.generators)) {
      const t = saved.extra.get(RNG + name);
      if (t === undefined) throw new Error(`${file} has no RNG state "${name}"`);
      g.setState(t);
    }
    if (run.ema !== null) {
      const emaState = new Map<string, Tensor>();
      for (const [k, t] of saved.extra) if (k.startsWith(EMA)) emaState.set(k.slice(EMA.length), t);
      if (emaState.size === 0) throw new Error(`${file} has no EMA weights but this run keeps an EMA (--ema ${run.cfg.ema})`);
      run.ema.model.loadStateDict(emaState);
    }
    return position;
  } finally {
    saved.model.dispose();
    for (const t of saved.extra.values()) t.dispose();
  }
}

/** loss.png and lr.png (as pretraining draws them) and accuracy.png from the epoch records; returns their paths. */
export async function writeFinetunePlots(out: string): Promise<string[]> {
  const written = await writeRunPlots(out);
  const epochs = RunLog.read(path.join(out, 'log.jsonl')).filter((r) => r.kind === 'epoch' && typeof r.top1 === 'number');
  if (epochs.length === 0) return written;
  const file = path.join(out, 'accuracy.png');
  const series = (key: string, name: string) => ({ name, points: epochs.filter((r) => typeof r[key] === 'number').map((r) => [r.epoch as number, r[key] as number] as [number, number]) });
  const all = [series('top1', 'top-1'), series('top5', 'top-5'), series('emaTop1', 'EMA top-1')].filter((s) => s.points.length > 0);
  await writeChart(file, { title: 'Test accuracy', xLabel: 'epoch', yLabel: 'accuracy', series: all });
  return [...written, file];
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
