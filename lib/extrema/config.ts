// The ExtreMA model configuration: a typed object with documented defaults.
// Everything needed to rebuild a model is here, so a checkpoint carries it.
import { vitConfig, type VitConfig, type VitConfigInput } from '../nn/vit-config';
import { describe } from '../tensor/dtype';
import { positiveInt, positiveFinite, numberInRange, oneOf } from '../checks';
import { checkMasking, type MaskMode } from './masking';

export type ExtremaLoss = 'byol' | 'infonce';
/** The norm in the projector's and predictor's hidden layers. */
export type HeadNorm = 'layer' | 'batch';
export const HEAD_NORMS: readonly HeadNorm[] = ['layer', 'batch'];
/** How the teacher's EMA momentum moves over training. */
export type MomentumSchedule = 'cosine' | 'constant';
export const MOMENTUM_SCHEDULES: readonly MomentumSchedule[] = ['cosine', 'constant'];

export interface ExtremaConfig {
  /** The student's encoder (the teacher is the same without stochastic depth). */
  encoder: VitConfig;
  /** Projector hidden width. Default 4096. */
  projectorHiddenDim: number;
  /** Output width of projector and predictor. Default 256. */
  projectorDim: number;
  /** Projector layers. Default 3. */
  projectorLayers: number;
  /** Predictor hidden width. Default 4096. */
  predictorHiddenDim: number;
  /** Predictor layers. Default 2. */
  predictorLayers: number;
  /** Fraction of patches each student view hides. Default 0.8. */
  maskRatio: number;
  /** Student views (masks) per image. Default 1. */
  numMasks: number;
  /** 'disjoint' (one permutation per image; the paper) or 'independent' (may overlap). */
  maskMode: MaskMode;
  /** 'byol' (the paper) or 'infonce' (Table 6). */
  loss: ExtremaLoss;
  /** InfoNCE temperature. Default 0.2. */
  temperature: number;
  /** Base EMA momentum m0 of the cosine schedule (the whole run's momentum when constant). Default 0.996. */
  momentum: number;
  /**
   * 'cosine' (the paper: m0 rising to 1) or 'constant' (m0 throughout, a
   * deviation: at small scale the teacher then keeps following the student).
   */
  momentumSchedule: MomentumSchedule;
  /**
   * 'layer' (the authors' LayerNorm heads) or 'batch': BatchNorm1d as in
   * BYOL's original heads, a deviation from the authors. At small scale the
   * LayerNorm heads collapse the targets early (issue 11), BatchNorm heads
   * keep them spread. The teacher's BatchNorms normalise with batch
   * statistics like BYOL's target network and keep their own running
   * statistics (the EMA moves parameters only).
   */
  headNorm: HeadNorm;
}

export type ExtremaConfigInput = Partial<Omit<ExtremaConfig, 'encoder'>> & { encoder?: VitConfigInput | VitConfig };

const DEFAULTS: Omit<ExtremaConfig, 'encoder'> = {
  projectorHiddenDim: 4096,
  projectorDim: 256,
  projectorLayers: 3,
  predictorHiddenDim: 4096,
  predictorLayers: 2,
  maskRatio: 0.8,
  numMasks: 1,
  maskMode: 'disjoint',
  loss: 'byol',
  temperature: 0.2,
  momentum: 0.996,
  momentumSchedule: 'cosine',
  headNorm: 'layer',
};

export function extremaConfig(input: ExtremaConfigInput = {}): ExtremaConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError(`Expected an ExtreMA config object but received ${describe(input)}`);
  for (const k of Object.keys(input)) {
    if (k !== 'encoder' && !(k in DEFAULTS)) throw new TypeError(`Unknown ExtreMA config field "${k}"`);
  }
  const rest = Object.fromEntries(Object.entries(input).filter(([k, v]) => k !== 'encoder' && v !== undefined));
  const cfg: ExtremaConfig = { ...DEFAULTS, ...rest, encoder: vitConfig(input.encoder ?? {}) };
  for (const k of ['projectorHiddenDim', 'projectorDim', 'projectorLayers', 'predictorHiddenDim', 'predictorLayers'] as const) positiveInt(cfg[k], `ExtreMA config "${k}"`);
  if (cfg.loss !== 'byol' && cfg.loss !== 'infonce') throw new TypeError(`Expected "byol" or "infonce" for ExtreMA config "loss" but received ${describe(cfg.loss)}`);
  positiveFinite(cfg.temperature, 'ExtreMA config "temperature"');
  numberInRange(cfg.momentum, 'ExtreMA config "momentum"', 0, 1);
  oneOf(cfg.momentumSchedule, 'ExtreMA config "momentumSchedule"', MOMENTUM_SCHEDULES);
  oneOf(cfg.headNorm, 'ExtreMA config "headNorm"', HEAD_NORMS);
  const [h, w] = cfg.encoder.imgSize;
  checkMasking((h / cfg.encoder.patchSize) * (w / cfg.encoder.patchSize), { ratio: cfg.maskRatio, numMasks: cfg.numMasks, mode: cfg.maskMode });
  return cfg;
}
