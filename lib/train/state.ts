// A training checkpoint: the model (authors' keys, loadable by every model
// loader), plus the optimizer moments, the RNG states and the position in the
// run, in one safetensors file written atomically.
import { saveCheckpoint, readCheckpoint } from '../extrema/checkpoint';
import type { ExtremaModel } from '../extrema/model';
import type { Tensor } from '../tensor/tensor';
import type { AdamW } from '../optim/adamw';
import type { GradScaler } from '../optim/grad-scaler';
import type { Generator } from '../runtime/generator';
import type { PretrainConfig } from './config';

export interface RunPosition {
  /** Epoch and batch within it where training continues. */
  epoch: number;
  step: number;
  /** Optimizer steps taken so far. */
  iteration: number;
  /** Processes of the run that wrote it (absent: 1); a resume with another count maps the position. */
  worldSize?: number;
}

export interface TrainingState {
  model: ExtremaModel;
  optimizer: AdamW;
  scaler: GradScaler;
  generators: Record<string, Generator>;
}

const OPT = 'optimizer.';
const RNG = 'rng.';

export function saveTrainingCheckpoint(file: string, s: TrainingState, position: RunPosition, config: PretrainConfig): void {
  const extra = new Map<string, Tensor>();
  const opt = s.optimizer.stateDict();
  for (const [k, t] of opt.state) extra.set(OPT + k, t);
  const rng: Tensor[] = [];
  for (const [name, g] of Object.entries(s.generators)) {
    const state = g.getState();
    rng.push(state);
    extra.set(RNG + name, state);
  }
  try {
    saveCheckpoint(file, s.model, {
      position: JSON.stringify(position),
      optimizer: JSON.stringify(opt.groups),
      scaler: JSON.stringify(s.scaler.stateDict()),
      pretrain: JSON.stringify(config),
    }, extra);
  } finally {
    for (const t of [...rng, ...opt.state.values()]) t.dispose();
  }
}

/** Restores everything saveTrainingCheckpoint wrote; returns where to continue. */
export function loadTrainingCheckpoint(file: string, s: TrainingState): RunPosition {
  const ckpt = readCheckpoint(file);
  try {
    const need = (key: string) => {
      const v = ckpt.metadata[key];
      if (v === undefined) throw new Error(`${file} is a model checkpoint without training state ("${key}" missing); start a new run from it with --init instead of --resume`);
      return JSON.parse(v) as unknown;
    };
    const position = need('position') as RunPosition;
    const groups = need('optimizer');
    const scaler = need('scaler');
    s.model.loadStateDict(ckpt.state);
    const optState = new Map<string, Tensor>();
    for (const [k, t] of ckpt.extra) if (k.startsWith(OPT)) optState.set(k.slice(OPT.length), t);
    s.optimizer.loadStateDict({ state: optState, groups } as ReturnType<AdamW['stateDict']>);
    s.scaler.loadStateDict(scaler as ReturnType<GradScaler['stateDict']>);
    for (const [name, g] of Object.entries(s.generators)) {
      const t = ckpt.extra.get(RNG + name);
      if (t === undefined) throw new Error(`${file} has no RNG state "${name}"`);
      g.setState(t);
    }
    return position;
  } finally {
    ckpt.dispose();
  }
}
