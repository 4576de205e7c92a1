// ExtreMA pretraining, top to bottom: set up the run (./run-setup), then for
// each optimizer step: schedules, `accumulate` micro-batches of augment, mask,
// forward, backward, then the AdamW step and the EMA update; per epoch: kNN
// monitor, checkpoint, plots. Everything random comes from generators whose
// states are checkpointed, so a resumed run continues bit for bit.
import * as fs from 'node:fs';
import { momentumAt } from '../extrema/ema';
import { augmentPair } from '../data/augment';
import { disposeBatch, type Batch } from '../data/loader';
import { warmupCosine, cosine } from '../optim/schedule';
import { clipGradNorm } from '../optim/clip';
import { autocast, synchronize } from '../runtime/device-runtime';
import { scope } from '../tensor/scope';
import { pretrainConfig, type PretrainConfig, type PretrainConfigInput } from './config';
import { saveTrainingCheckpoint, type RunPosition } from './state';
import { knnMonitor } from './knn-monitor';
import { cachedProbe } from '../eval/linprobe';
import { writeRunPlots } from './run-plots';
import { setUpRun, CHECKPOINT_FILE, type Run } from './run-setup';
import { PendingLosses, addInto } from './loss-readback';
import { collapseStats, type CollapseStats } from '../extrema/collapse';
import { StaticPretrainStep } from './graph-step';
import type { Tensor } from '../tensor/tensor';
import { ProcessGroup } from '../runtime/process-group';
import { DistributedDataParallel } from '../distributed/ddp';
import { rankDevice, worldFromEnv } from '../runtime/world-env';

export { CHECKPOINT_FILE };

export class TrainingError extends Error {
  override name = 'TrainingError';
}

export interface PretrainHooks {
  /** Called after every optimizer step. */
  onStep?: (r: { epoch: number; step: number; iteration: number; loss: number; lr: number; imagesPerSecond: number; stepsPerEpoch: number; collapse?: CollapseStats }) => void;
  onEpoch?: (r: { epoch: number; knn: number | null; seconds: number }) => void;
  onKnn?: (r: { epoch: number; accuracy: number }) => void;
  /** The cached linear probe before training and at the end (knn.probe). */
  onProbe?: (r: { epoch: number; top1: number }) => void;
  /** Lines worth showing a person (resume, skipped files, stale files removed, where things are written). */
  onMessage?: (line: string) => void;
}

/** What a step reports once its loss is read back. */
interface StepRecord { epoch: number; t: number; step: number; iteration: number; lr: number; momentum: number; images: number; seconds: number }

export interface PretrainOptions {
  /** 'auto' (default): continue from the run folder's checkpoint if there is one; 'never': start over; or a checkpoint file. */
  resume?: string;
  /** Stop, with a checkpoint, once this many optimizer steps are done in total (time-boxed runs, tests). */
  stopAfterIterations?: number;
  /**
   * Train data-parallel in this group (each rank passes its own). Default:
   * join one from torchrun's environment when WORLD_SIZE is set, else train
   * alone. Rank 0 alone writes the run folder and runs the linear probe;
   * the kNN monitor is shared out. Every rank returns the same result but
   * the probe's numbers (rank 0's alone).
   */
  group?: ProcessGroup | null;
}

export interface PretrainResult {
  config: PretrainConfig;
  out: string;
  iterations: number;
  /** kNN accuracy before training and at the end (null without queries). */
  knnBefore: number | null;
  knnAfter: number | null;
  /** Cached linear-probe top-1 before training and at the end (null unless knn.probe). */
  probeBefore: number | null;
  probeAfter: number | null;
  losses: number[];
  checkpoint: string;
  plots: string[];
}

export async function pretrain(input: PretrainConfigInput | PretrainConfig, hooks: PretrainHooks = {}, options: PretrainOptions = {}): Promise<PretrainResult> {
  const parsed = pretrainConfig(input as PretrainConfigInput);
  const ownGroup = options.group === undefined && worldFromEnv() !== null;
  const onCuda = parsed.device.startsWith('cuda');
  // CUDA gradients and losses go over NCCL; a CPU run needs only Gloo.
  const group = ownGroup ? await ProcessGroup.init({ backend: onCuda ? 'nccl' : 'gloo' }) : options.group ?? null;
  try {
    const distributed = group !== null && group.size > 1 ? group : null;
    const cfg = distributed === null ? parsed : { ...parsed, device: rankDevice(parsed.device, distributed.localRank) };
    return await pretrainIn(cfg, distributed, hooks, options);
  } finally {
    if (ownGroup) group?.destroy();
  }
}

async function pretrainIn(cfg: PretrainConfig, group: ProcessGroup | null, hooks: PretrainHooks, options: PretrainOptions): Promise<PretrainResult> {
  const lead = group === null || group.rank === 0;
  const say = lead ? hooks.onMessage ?? (() => {}) : () => {};
  if (group !== null && cfg.cudaGraph) throw new TrainingError('--cuda-graph is not supported in a distributed run yet (the gradient all-reduce would have to be captured too); drop it');
  const run = setUpRun(cfg, options.resume ?? 'auto', say, group === null ? undefined : { rank: group.rank, size: group.size });
  const { loader, model, optimizer, scaler, log, checkpoint } = run;
  let ddp: DistributedDataParallel | null = null;
  const save = (position: RunPosition) => {
    if (lead) saveTrainingCheckpoint(checkpoint, run, { ...position, worldSize: group?.size ?? 1 }, cfg);
  };
  const stepsPerEpoch = loader.stepsPerEpoch();
  const stopAfter = options.stopAfterIterations ?? Infinity;
  let position: RunPosition = run.position;
  const losses: number[] = [];
  // On an accelerator the loss is read every cfg.lossEvery steps, so the host queues steps ahead of the GPU.
  const pending = new PendingLosses<StepRecord>(cfg.device === 'cpu' ? 1 : cfg.lossEvery);
  let graphed: StaticPretrainStep | null = null;
  const report = (read: Array<{ loss: number; extra: number[] | null; record: StepRecord }>) => {
    for (const { loss, extra, record: r } of read) {
      if (!Number.isFinite(loss)) {
        const last = fs.existsSync(run.checkpoint) ? run.checkpoint : '(none yet)';
        throw new TrainingError(`The loss is ${loss} at epoch ${r.epoch}, step ${r.step} (iteration ${r.iteration}); stopping. The last good checkpoint is ${last}. Lower the learning rate, enable --clip-grad, or use fp32.`);
      }
      losses.push(loss);
      const collapse = extra === null ? undefined : { spread: extra[0]!, effectiveRank: extra[1]!, meanCosine: extra[2]! };
      log.write({ kind: 'step', iteration: r.iteration, epoch: r.t, loss, lr: r.lr, momentum: r.momentum, ...collapse });
      hooks.onStep?.({ epoch: r.epoch, step: r.step, iteration: r.iteration, loss, lr: r.lr, imagesPerSecond: r.images / r.seconds, stepsPerEpoch, ...(collapse ? { collapse } : {}) });
    }
  };
  try {
    if (group !== null) {
      ddp = new DistributedDataParallel(group, model.studentParameters().map(([, p]) => p));
      // Every rank starts from rank 0's weights (a fresh init is seeded alike anyway; this also covers a resume).
      await ddp.broadcastFromRoot([...model.stateDict().values()]);
    }
    if (cfg.cudaGraph) graphed = new StaticPretrainStep(run, true, say);
    const knnBefore = position.iteration === 0 ? await monitor(run, 0, 0, hooks, group) : run.knnBeforeFromLog;
    const probeBefore = position.iteration === 0 ? await probe(run, 0, 0, hooks) : run.probeBeforeFromLog;
    await group?.barrier();
    let knnAfter: number | null = null;
    let probeAfter: number | null = null;
    for (let epoch = position.epoch; epoch < cfg.epochs; epoch++) {
      const started = performance.now();
      let images = 0;
      for await (const { step, batches } of loader.steps(epoch, epoch === position.epoch ? position.step : 0)) {
        const t = position.iteration / stepsPerEpoch; // fractional epochs
        const scheduledLr = warmupCosine(t, { base: run.lr, warmupSteps: cfg.warmupEpochs, totalSteps: cfg.epochs, final: cfg.minLr });
        optimizer.setLr(scheduledLr);
        if (cfg.weightDecayEnd !== null) optimizer.setWeightDecay(cosine(t, cfg.epochs, cfg.weightDecay, cfg.weightDecayEnd));
        const momentum = momentumAt(t, cfg.epochs, cfg.model.momentum, cfg.model.momentumSchedule);
        let loss: Tensor | null = null;
        let collapse: Tensor | null = null;
        let micro = 0;
        for await (const batch of batches) {
          // the last micro-batch's backward averages the gradients over the ranks (during backward)
          if (ddp !== null && ++micro === cfg.accumulate) ddp.beforeBackward();
          const measure: boolean = loss === null && cfg.collapseEvery > 0 && position.iteration % cfg.collapseEvery === 0;
          // the graphed step also takes the optimizer step and the EMA update (one micro-batch a step)
          const l: { loss: Tensor; collapse: Tensor | null } = graphed === null ? backward(run, batch, measure) : graphedStep(run, graphed, batch, scheduledLr, momentum, measure);
          loss = loss === null ? l.loss : addInto(loss, l.loss);
          collapse ??= l.collapse;
          images += batch.indices.length;
        }
        if (loss === null) continue;
        if (ddp !== null) {
          await ddp.afterBackward();
          await ddp.group.allReduce(loss, 'avg'); // the logged loss is the whole batch's
        }
        if (graphed === null) {
          if (cfg.clipGrad !== null) {
            scaler.unscale(optimizer);
            clipGradNorm(model.studentParameters().map(([, p]) => p), cfg.clipGrad);
          }
          scaler.step(optimizer);
          scaler.update();
          model.zeroGrad();
          model.updateTeacher(momentum);
        }
        position = { epoch, step: step + 1, iteration: position.iteration + 1 };
        if (ddp !== null && cfg.syncCheckEvery > 0 && position.iteration % cfg.syncCheckEvery === 0) {
          await ddp.assertSameOnAllRanks(model.parameters(), `After iteration ${position.iteration}, the weights (student and teacher)`);
        }
        const lr = optimizer.groups[0]?.lr ?? run.lr;
        pending.push(loss, { epoch, t, step: step + 1, iteration: position.iteration, lr, momentum, images, seconds: (performance.now() - started) / 1000 }, collapse);
        loss.dispose();
        collapse?.dispose();
        const stopping = position.iteration >= stopAfter;
        // a checkpoint is only written after its steps' losses were read (a NaN stops the run first)
        if (pending.due || stopping || position.step === stepsPerEpoch) report(pending.take());
        if (stopping) {
          if (position.step === stepsPerEpoch) position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
          save(position);
          await group?.barrier();
          return await finish(run, { iterations: position.iteration, knnBefore, knnAfter: null, probeBefore, probeAfter: null, losses }, false, say);
        }
      }
      report(pending.take());
      if (cfg.device !== 'cpu') synchronize(cfg.device);
      position = { epoch: epoch + 1, step: 0, iteration: position.iteration };
      const last = epoch + 1 === cfg.epochs;
      const knn = last || (epoch + 1) % cfg.knn.every === 0 ? await monitor(run, epoch + 1, position.iteration, hooks, group) : null;
      if (last) {
        knnAfter = knn;
        probeAfter = await probe(run, epoch + 1, position.iteration, hooks);
      }
      const seconds = (performance.now() - started) / 1000;
      log.write({ kind: 'epoch', iteration: position.iteration, epoch: epoch + 1, seconds, meanLoss: mean(losses.slice(-stepsPerEpoch)) });
      if (last || (epoch + 1) % cfg.checkpointEvery === 0) save(position);
      if (lead) await writeRunPlots(cfg.out);
      // the others wait here while rank 0 evaluates and writes
      await group?.barrier();
      hooks.onEpoch?.({ epoch: epoch + 1, knn, seconds });
    }
    return await finish(run, { iterations: position.iteration, knnBefore, knnAfter, probeBefore, probeAfter, losses }, true, say);
  } finally {
    pending.dispose();
    graphed?.dispose();
    ddp?.dispose();
    run.dispose();
  }
}

/**
 * One micro-batch: augment, mask, forward (under autocast when asked), scaled
 * backward. Returns its loss / accumulate, detached, on the device, and with
 * `measure` the teacher's collapse statistics on this batch (also on the device).
 */
function backward(run: Run, batch: Batch, measure: boolean): { loss: Tensor; collapse: Tensor | null } {
  const { cfg, model, scaler, generators } = run;
  try {
    return scope(() => {
      const { student, teacher } = augmentPair(batch.images, run.augment, generators.augment, generators.augmentHost);
      const forward = () => model.forward(student, teacher, { generator: generators.masks });
      const out = cfg.precision === 'fp32' ? forward() : autocast(cfg.device, cfg.precision === 'bf16' ? 'bfloat16' : 'float16', forward);
      const share = cfg.accumulate === 1 ? out.loss : out.loss.div(cfg.accumulate);
      scaler.scale(share).backward();
      return { loss: share.detach(), collapse: measure && out.targets.shape[0]! >= 2 ? collapseStats(out.targets, out.teacherFeatures) : null };
    });
  } finally {
    disposeBatch(batch);
  }
}

/** One whole step through the fixed-tensor (graphable) step: augment here, the rest in `step`. */
function graphedStep(run: Run, step: StaticPretrainStep, batch: Batch, lr: number, momentum: number, measure: boolean): { loss: Tensor; collapse: Tensor | null } {
  try {
    return scope(() => {
      const { student, teacher } = augmentPair(batch.images, run.augment, run.generators.augment, run.generators.augmentHost);
      return step.step(student, teacher, lr, momentum, measure);
    });
  } finally {
    disposeBatch(batch);
  }
}

/**
 * The kNN monitor on the teacher, logged (null when the run has no queries or
 * the monitor is off); in a data-parallel run every rank embeds its share and
 * the features are all-gathered.
 */
async function monitor(run: Run, epoch: number, iteration: number, hooks: PretrainHooks, group: ProcessGroup | null): Promise<number | null> {
  if (run.knnSets === null) return null;
  const o = { k: run.cfg.knn.k, temperature: run.cfg.knn.temperature, device: run.cfg.device };
  const accuracy = await knnMonitor(run.model.momentum_encoder, run.knnSets, o, group);
  run.log.write({ kind: 'knn', iteration, epoch, accuracy });
  hooks.onKnn?.({ epoch, accuracy });
  return accuracy;
}

/**
 * The cached linear probe on the kNN sets (teacher, class token before the
 * final norm), logged; null unless knn.probe, and on ranks other than 0.
 */
async function probe(run: Run, epoch: number, iteration: number, hooks: PretrainHooks): Promise<number | null> {
  if (run.knnSets === null || !run.cfg.knn.probe || run.world.rank !== 0) return null;
  const { top1 } = await cachedProbe(run.model.momentum_encoder, run.knnSets.bank, run.knnSets.queries, { device: run.cfg.device, seed: run.cfg.seed });
  run.log.write({ kind: 'event', event: 'probe', iteration, epoch, top1 });
  hooks.onProbe?.({ epoch, top1 });
  return top1;
}

async function finish(run: Run, r: Pick<PretrainResult, 'iterations' | 'knnBefore' | 'knnAfter' | 'probeBefore' | 'probeAfter' | 'losses'>, complete: boolean, say: (line: string) => void): Promise<PretrainResult> {
  const plots = run.world.rank === 0 ? await writeRunPlots(run.cfg.out) : [];
  if (complete) say(`done: checkpoint ${run.checkpoint}; plots ${plots.join(', ')}`);
  return { config: run.cfg, out: run.cfg.out, checkpoint: run.checkpoint, plots, ...r };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
