// ExtreMA pretraining, top to bottom: data, model, optimizer, then for each
// step: augment, mask, forward, backward, AdamW step, EMA update; per epoch:
// kNN monitor, checkpoint, plots. Everything random comes from generators
// whose states are checkpointed, so a resumed run continues bit for bit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExtremaModel } from '../extrema/model';
import { momentumAt } from '../extrema/ema';
import { openDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { augmentConfig, augmentPair } from '../data/augment';
import { defaultNormalization } from '../data/preprocess';
import { AdamW } from '../optim/adamw';
import { paramGroupsForDecay } from '../optim/param-groups';
import { scaledLr, warmupCosine, cosine } from '../optim/schedule';
import { clipGradNorm } from '../optim/clip';
import { GradScaler } from '../optim/grad-scaler';
import { Generator } from '../runtime/generator';
import { autocast, synchronize } from '../runtime/device-runtime';
import { scope } from '../tensor/scope';
import { writeFileAtomic } from '../io/safetensors';
import { pretrainConfig, type PretrainConfig, type PretrainConfigInput } from './config';
import { RunLog, type LogRecord } from './log';
import { saveTrainingCheckpoint, loadTrainingCheckpoint, type RunPosition } from './state';
import { openKnnSets, knnMonitor } from './knn-monitor';
import { writeRunPlots } from './run-plots';

export class TrainingError extends Error {
  override name = 'TrainingError';
}

export interface PretrainHooks {
  /** Called after every optimizer step. */
  onStep?: (r: { epoch: number; step: number; iteration: number; loss: number; lr: number; imagesPerSecond: number; stepsPerEpoch: number }) => void;
  onEpoch?: (r: { epoch: number; knn: number | null; seconds: number }) => void;
  onKnn?: (r: { epoch: number; accuracy: number }) => void;
  /** Lines worth showing a person (resume, skipped files, where things are written). */
  onMessage?: (line: string) => void;
  /** Stop (after writing a checkpoint) once this many optimizer steps are done; for tests and time-boxed runs. */
  stopAfterIterations?: number;
}

export interface PretrainResult {
  config: PretrainConfig;
  out: string;
  iterations: number;
  /** kNN accuracy before training and at the end (null without queries). */
  knnBefore: number | null;
  knnAfter: number | null;
  losses: number[];
  checkpoint: string;
  plots: string[];
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export async function pretrain(input: PretrainConfigInput | PretrainConfig, hooks: PretrainHooks = {}, options: { resume?: string | 'auto' | 'never' } = {}): Promise<PretrainResult> {
  const cfg = pretrainConfig(input as PretrainConfigInput);
  const say = hooks.onMessage ?? (() => {});
  fs.mkdirSync(cfg.out, { recursive: true });
  writeFileAtomic(path.join(cfg.out, 'config.json'), Buffer.from(`${JSON.stringify(cfg, null, 2)}\n`));

  // ---- data ---------------------------------------------------------------
  const enc = cfg.model.encoder;
  const size = enc.imgSize[0];
  if (enc.imgSize[1] !== size) throw new RangeError(`pretrain needs a square input size but the model takes ${enc.imgSize.join('x')}`);
  const channels = enc.inChans === 1 ? 1 : 3;
  const train = openDataset(cfg.train, { size, channels, ...(cfg.trainLimit > 0 ? { limit: cfg.trainLimit } : {}) });
  const loader = new DataLoader(train, {
    batchSize: cfg.batchSize, seed: cfg.seed, device: cfg.device, concurrency: cfg.workers, strict: cfg.strict,
    onSkip: (name, e) => say(`skipped ${name}: ${e.message}`),
  });
  const stepsPerEpoch = Math.floor(loader.batchesPerEpoch() / cfg.accumulate);
  if (stepsPerEpoch < 1) throw new RangeError(`${loader.batchesPerEpoch()} batches per epoch are fewer than accumulate = ${cfg.accumulate}`);
  const knnSets = cfg.knn.queries === null || cfg.knn.every === 0 ? null
    : openKnnSets(cfg.knn.bank ?? cfg.train, cfg.knn.queries, size, channels, cfg.knn.bankLimit, cfg.knn.queryLimit);
  say(`data: ${train.describe}; ${stepsPerEpoch} steps per epoch of ${cfg.batchSize * cfg.accumulate} images`);

  // ---- model, optimizer, generators ----------------------------------------
  const model = new ExtremaModel(cfg.model, { seed: cfg.seed });
  model.to(cfg.device);
  const lr = scaledLr(cfg.baseLr, cfg.batchSize * cfg.accumulate);
  const optimizer = new AdamW(paramGroupsForDecay(model.studentParameters(), { weightDecay: cfg.weightDecay }), { lr, betas: cfg.betas, weightDecay: cfg.weightDecay });
  const scaler = new GradScaler({ enabled: cfg.precision === 'fp16' });
  const generators: Record<string, Generator> = {
    augment: Generator.create(cfg.seed + 1, cfg.device),
    masks: Generator.create(cfg.seed + 2, cfg.device),
    // Drop path draws from the device's default generator.
    default: Generator.default(cfg.device),
  };
  generators.default!.manualSeed(cfg.seed + 3);
  const augment = augmentConfig({ ...cfg.augment, size, ...defaultNormalization(channels) });
  const checkpoint = path.join(cfg.out, CHECKPOINT_FILE);

  let position: RunPosition = { epoch: 0, step: 0, iteration: 0 };
  const resumeFrom = options.resume === undefined || options.resume === 'auto' ? (fs.existsSync(checkpoint) ? checkpoint : null)
    : options.resume === 'never' ? null : options.resume;
  if (resumeFrom !== null) {
    position = loadTrainingCheckpoint(resumeFrom, { model, optimizer, scaler, generators });
    say(`resumed from ${resumeFrom} at epoch ${position.epoch}, step ${position.step} (iteration ${position.iteration})`);
  }
  const log = new RunLog(path.join(cfg.out, 'log.jsonl'), resumeFrom === null ? null : position.iteration);
  const losses: number[] = [];
  const record = (r: LogRecord) => log.write(r);
  const state = { model, optimizer, scaler, generators };
  let knnBefore: number | null = null;
  let knnAfter: number | null = null;
  const runKnn = async (epoch: number) => {
    if (knnSets === null) return null;
    const accuracy = await knnMonitor(model.momentum_encoder, knnSets, { k: cfg.knn.k, temperature: cfg.knn.temperature, device: cfg.device });
    record({ kind: 'knn', iteration: position.iteration, epoch, accuracy });
    hooks.onKnn?.({ epoch, accuracy });
    return accuracy;
  };

  try {
    if (position.iteration === 0) knnBefore = await runKnn(0);
    else knnBefore = (RunLog.read(log.file).find((r) => r.kind === 'knn' && r.epoch === 0)?.accuracy as number | undefined) ?? null;
    // ---- the loop ------------------------------------------------------------
    for (let epoch = position.epoch; epoch < cfg.epochs; epoch++) {
      const started = performance.now();
      let micro = 0;
      let images = 0;
      let lossSum = 0;
      const firstBatch = epoch === position.epoch ? position.step * cfg.accumulate : 0;
      for await (const batch of loader.epoch(epoch, firstBatch)) {
        const stepInEpoch = Math.floor(batch.step / cfg.accumulate);
        if (stepInEpoch >= stepsPerEpoch) {
          batch.images.dispose();
          batch.labels?.dispose();
          break;
        }
        const t = position.iteration / stepsPerEpoch; // fractional epochs
        if (micro === 0) {
          optimizer.setLr(warmupCosine(t, { base: lr, warmupSteps: cfg.warmupEpochs, totalSteps: cfg.epochs, final: cfg.minLr }));
          if (cfg.weightDecayEnd !== null) optimizer.setWeightDecay(cosine(t, cfg.epochs, cfg.weightDecay, cfg.weightDecayEnd));
        }
        const loss = scope(() => {
          const { student, teacher } = augmentPair(batch.images, augment, generators.augment);
          const forward = () => model.forward(student, teacher, { generator: generators.masks }).loss;
          const l = cfg.precision === 'fp32' ? forward() : autocast(cfg.device, cfg.precision === 'bf16' ? 'bfloat16' : 'float16', forward);
          scaler.scale(cfg.accumulate === 1 ? l : l.div(cfg.accumulate)).backward();
          return l.item();
        });
        batch.images.dispose();
        batch.labels?.dispose();
        if (!Number.isFinite(loss)) {
          throw new TrainingError(`The loss is ${loss} at epoch ${epoch}, step ${stepInEpoch} (iteration ${position.iteration}); stopping. The last good checkpoint is ${fs.existsSync(checkpoint) ? checkpoint : '(none yet)'}. Lower the learning rate, enable --clip-grad, or use fp32.`);
        }
        lossSum += loss;
        images += batch.indices.length;
        if (++micro < cfg.accumulate) continue;
        micro = 0;
        if (cfg.clipGrad !== null) {
          scaler.unscale(optimizer);
          clipGradNorm(model.studentParameters().map(([, p]) => p), cfg.clipGrad);
        }
        scaler.step(optimizer);
        scaler.update();
        model.zeroGrad();
        const m = momentumAt(t, cfg.epochs, cfg.model.momentum);
        model.updateTeacher(m);
        const stepLoss = lossSum / cfg.accumulate;
        lossSum = 0;
        losses.push(stepLoss);
        position = { epoch, step: stepInEpoch + 1, iteration: position.iteration + 1 };
        const seconds = (performance.now() - started) / 1000;
        const currentLr = optimizer.groups[0]?.lr ?? lr;
        record({ kind: 'step', iteration: position.iteration, epoch: t, loss: stepLoss, lr: currentLr, momentum: m });
        hooks.onStep?.({ epoch, step: stepInEpoch + 1, iteration: position.iteration, loss: stepLoss, lr: currentLr, imagesPerSecond: images / seconds, stepsPerEpoch });
        if (hooks.stopAfterIterations !== undefined && position.iteration >= hooks.stopAfterIterations) {
          if (position.step >= stepsPerEpoch) position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
          saveTrainingCheckpoint(checkpoint, state, position, cfg);
          return finish(false);
        }
      }
      if (cfg.device !== 'cpu') synchronize(cfg.device);
      position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
      const last = epoch + 1 === cfg.epochs;
      let knn: number | null = null;
      if (knnSets !== null && (last || (epoch + 1) % cfg.knn.every === 0)) knn = await runKnn(epoch + 1);
      if (last) knnAfter = knn;
      const seconds = (performance.now() - started) / 1000;
      record({ kind: 'epoch', iteration: position.iteration, epoch: epoch + 1, seconds, meanLoss: mean(losses.slice(-stepsPerEpoch)) });
      if (last || (epoch + 1) % cfg.checkpointEvery === 0) saveTrainingCheckpoint(checkpoint, state, position, cfg);
      await writeRunPlots(cfg.out);
      hooks.onEpoch?.({ epoch: epoch + 1, knn, seconds });
    }
    return finish(true);
  } finally {
    log.close();
    model.dispose();
    optimizer.dispose();
  }

  async function finish(complete: boolean): Promise<PretrainResult> {
    const plots = await writeRunPlots(cfg.out);
    if (complete) say(`done: checkpoint ${checkpoint}; plots ${plots.join(', ')}`);
    return { config: cfg, out: cfg.out, iterations: position.iteration, knnBefore, knnAfter, losses, checkpoint, plots };
  }
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
