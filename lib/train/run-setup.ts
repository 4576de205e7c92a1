// Everything a pretraining run holds, made from its recipe: the run folder
// (config.json, stale temp files of killed writers removed), the data loader
// and kNN sets, the model, optimizer, loss scaler and generators, the
// augmentation, and the position to continue from when resuming.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExtremaModel } from '../extrema/model';
import { openDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { augmentConfig, type AugmentConfig } from '../data/augment';
import { defaultNormalization } from '../data/preprocess';
import { AdamW } from '../optim/adamw';
import { paramGroupsForDecay, scaleLrWhere, type ParamGroup } from '../optim/param-groups';
import { scaledLr } from '../optim/schedule';
import { GradScaler } from '../optim/grad-scaler';
import { Generator } from '../runtime/generator';
import { removeStaleTempFiles, writeFileAtomic } from '../io/fs';
import type { PretrainConfig } from './config';
import { RunLog } from '../io/run-log';
import { loadTrainingCheckpoint, type RunPosition, type TrainingState } from './state';
import { openKnnSets, type KnnSets } from './knn-monitor';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export interface Run extends TrainingState {
  cfg: PretrainConfig;
  loader: DataLoader;
  knnSets: KnnSets | null;
  augment: AugmentConfig;
  /** The peak learning rate: base x images per step / 256. */
  lr: number;
  checkpoint: string;
  log: RunLog;
  /** Where training continues (all zero for a new run). */
  position: RunPosition;
  /** This process's place in a data-parallel run. */
  world: RunWorld;
  /** A resumed run's kNN and linear probe before training, from its log. */
  knnBeforeFromLog: number | null;
  probeBeforeFromLog: number | null;
  dispose(): void;
}

/**
 * The optimizer's groups: [decay, noDecay] (the authors' rule), each split
 * into [others, predictor] when the predictor's lr is scaled. With scale 1
 * the two groups stay two, so checkpoints of earlier runs resume.
 */
export function pretrainParamGroups(model: ExtremaModel, cfg: Pick<PretrainConfig, 'weightDecay' | 'predictorLrScale'>): ParamGroup[] {
  const groups = paramGroupsForDecay(model.studentParameters(), { weightDecay: cfg.weightDecay });
  return cfg.predictorLrScale === 1 ? groups : scaleLrWhere(groups, (name) => name.startsWith('predictor.'), cfg.predictorLrScale);
}

/** This process's place in a data-parallel run; { rank: 0, size: 1 } alone. */
export interface RunWorld {
  rank: number;
  size: number;
}

/**
 * Sets the run up for this process. In a data-parallel run (world.size > 1)
 * rank 0 alone writes the run folder; each rank reads
 * its shard of every epoch, and draws augmentations and masks from
 * generators seeded from (seed, rank); the peak lr counts every rank's images.
 */
export function setUpRun(cfg: PretrainConfig, resume: string, say: (line: string) => void, world: RunWorld = { rank: 0, size: 1 }): Run {
  const lead = world.rank === 0;
  if (lead) {
    fs.mkdirSync(cfg.out, { recursive: true });
    for (const name of removeStaleTempFiles(cfg.out)) say(`removed ${path.join(cfg.out, name)}, left by a write that was killed`);
    writeFileAtomic(path.join(cfg.out, 'config.json'), Buffer.from(`${JSON.stringify(cfg, null, 2)}\n`));
  }

  const enc = cfg.model.encoder;
  const size = enc.imgSize[0];
  if (enc.imgSize[1] !== size) throw new RangeError(`pretrain needs a square input size but the model takes ${enc.imgSize.join('x')}`);
  const channels = enc.inChans === 1 ? 1 : 3;
  const train = openDataset(cfg.train, { size, channels, limit: cfg.trainLimit });
  const loader = new DataLoader(train, {
    mode: 'train', batchSize: cfg.batchSize, accumulate: cfg.accumulate, seed: cfg.seed, device: cfg.device, concurrency: cfg.workers, strict: cfg.strict,
    onSkip: (name, e) => say(`skipped ${name}: ${e.message}`), shard: world,
  });
  const knnSets = cfg.knn.queries === null || cfg.knn.every === 0 ? null
    : openKnnSets(cfg.knn.bank ?? cfg.train, cfg.knn.queries, size, channels, cfg.knn.bankLimit, cfg.knn.queryLimit);
  const ranks = world.size > 1 ? ` on each of ${world.size} ranks` : '';
  say(`data: ${train.describe}; ${loader.stepsPerEpoch()} steps per epoch of ${cfg.batchSize * cfg.accumulate} images${ranks}`);

  const model = new ExtremaModel(cfg.model, { seed: cfg.seed });
  let optimizer: AdamW | null = null;
  try {
    model.to(cfg.device);
    const lr = scaledLr(cfg.baseLr, cfg.batchSize * cfg.accumulate * world.size);
    optimizer = new AdamW(pretrainParamGroups(model, cfg), { lr, betas: cfg.betas, weightDecay: cfg.weightDecay });
    const scaler = new GradScaler({ enabled: cfg.precision === 'fp16' });
    // Rank 0 draws what a single process draws; rank r from seeds r * 1,000,003
    // further on, or, with global draws, from the same streams as rank 0.
    const perRank = world.size > 1 && !cfg.globalDraws;
    const seedOf = (k: number) => (cfg.seed + k + (perRank ? world.rank * 1_000_003 : 0)) % Number.MAX_SAFE_INTEGER;
    const generators: Record<string, Generator> = {
      augment: Generator.create(seedOf(1), cfg.device),
      masks: Generator.create(seedOf(2), cfg.device),
      // Drop path draws from the device's default generator.
      default: Generator.default(cfg.device),
      // On a GPU the crop boxes and the jitter order come from a CPU generator:
      // drawn on the device they would be read back, a host sync per view.
      ...(cfg.device === 'cpu' ? {} : { augmentHost: Generator.create(seedOf(4), 'cpu') }),
    };
    generators.default!.manualSeed(seedOf(3));
    if (world.size > 1 && cfg.globalDraws) {
      for (const name of ['augment', 'masks', 'augmentHost']) if (generators[name]) generators[name]!.rowShard = { rank: world.rank, size: world.size };
    }
    const checkpoint = path.join(cfg.out, CHECKPOINT_FILE);
    const resumeFrom = resume === 'auto' ? (fs.existsSync(checkpoint) ? checkpoint : null) : resume === 'never' ? null : resume;
    let position: RunPosition = { epoch: 0, step: 0, iteration: 0 };
    let loggedUpTo: number | null = null;
    if (resumeFrom !== null) {
      position = loadTrainingCheckpoint(resumeFrom, { model, optimizer, scaler, generators });
      if (perRank && !lead) {
        // The checkpoint holds rank 0's generators; the others start afresh from (seed, rank, iteration).
        Object.values(generators).forEach((g, i) => g.manualSeed((seedOf(10 + i) + position.iteration * 7919) % Number.MAX_SAFE_INTEGER));
      }
      loggedUpTo = position.iteration;
      const saved = position.worldSize ?? 1;
      if (saved !== world.size) {
        // Same images seen: the saved steps of saved x batch each, in steps of size x batch.
        const steps = loader.stepsPerEpoch();
        const step = Math.min(steps, Math.floor((position.step * saved) / world.size));
        say(`the checkpoint was written by ${saved} process${saved === 1 ? '' : 'es'} and this run has ${world.size}: epoch ${position.epoch}, step ${position.step} becomes step ${step} of ${steps}`);
        position = { epoch: position.epoch, step, iteration: position.epoch * steps + step };
      }
      say(`resumed from ${resumeFrom} at epoch ${position.epoch}, step ${position.step} (iteration ${position.iteration})`);
    }
    const logFile = path.join(cfg.out, 'log.jsonl');
    const before = resumeFrom === null || !lead ? [] : RunLog.read(logFile).filter((r) => r.epoch === 0);
    const knnBeforeFromLog = (before.find((r) => r.kind === 'knn')?.accuracy as number | undefined) ?? null;
    const probeBeforeFromLog = (before.find((r) => r.kind === 'event' && r.event === 'probe')?.top1 as number | undefined) ?? null;
    const log = new RunLog(logFile, loggedUpTo, { discard: !lead });
    const opt = optimizer;
    return {
      cfg, loader, knnSets, model, optimizer: opt, scaler, generators, lr, checkpoint, log, position, world, knnBeforeFromLog, probeBeforeFromLog,
      augment: augmentConfig({ ...cfg.augment, size, ...defaultNormalization(channels) }),
      dispose() {
        log.close();
        model.dispose();
        opt.dispose();
      },
    };
  } catch (e) {
    model.dispose();
    optimizer?.dispose();
    throw e;
  }
}
