// Vision Transformer configuration: a typed object with documented defaults,
// named presets, and validation that names the offending field.
import { describe } from '../tensor/dtype';
import { intInRange } from '../checks';

/**
 * How the instance representation is formed (the paper's appendix A):
 * - 'class-attention': CaiT-style class-attention blocks after the ViT (ExtreMA's design)
 * - 'class-token': a class token at the ViT input, as in the original ViT (unstable under extreme masking)
 * - 'mean': average of the patch tokens (finds a shortcut)
 */
export type InstancePooling = 'class-attention' | 'class-token' | 'mean';
export const INSTANCE_POOLINGS: readonly InstancePooling[] = ['class-attention', 'class-token', 'mean'];

export interface VitConfig {
  /** Input height and width in pixels. Default 224. */
  imgSize: [number, number];
  /** Square patch side in pixels. Default 16. */
  patchSize: number;
  /** Image channels (1 for grayscale). Default 3. */
  inChans: number;
  /** Token width D. */
  embedDim: number;
  /** Number of self-attention blocks. */
  depth: number;
  numHeads: number;
  /** MLP hidden width = mlpRatio * D. Default 4. */
  mlpRatio: number;
  /** Bias on the q, k, v projections. Default true. */
  qkvBias: boolean;
  /** Class-attention blocks after the ViT (paper Table 5). Default 2; 0 unless pooling is 'class-attention'. */
  classAttentionLayers: number;
  /** Initial layer-scale value in the class-attention blocks. Default 0.1. */
  layerScaleInit: number;
  /** Stochastic depth at the last block, rising linearly from 0. Default 0. */
  dropPathRate: number;
  /** LayerNorm epsilon in the encoder. Default 1e-6. */
  normEps: number;
  pooling: InstancePooling;
}

export type VitPreset = 'tiny' | 'small' | 'base' | 'large';

export const VIT_PRESETS: Readonly<Record<VitPreset, Pick<VitConfig, 'embedDim' | 'depth' | 'numHeads'>>> = {
  tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  small: { embedDim: 384, depth: 12, numHeads: 6 },
  base: { embedDim: 768, depth: 12, numHeads: 12 },
  large: { embedDim: 1024, depth: 24, numHeads: 16 },
};

export type VitConfigInput = Partial<Omit<VitConfig, 'imgSize'>> & { imgSize?: number | [number, number]; preset?: VitPreset };

/** Fills defaults (from a preset, then base sizes) and validates the result. */
export function vitConfig(input: VitConfigInput = {}): VitConfig {
  if (typeof input !== 'object' || input === null) throw new TypeError(`Expected a ViT config object but received ${describe(input)}`);
  const { preset, imgSize, ...rest } = input;
  if (preset !== undefined && !(preset in VIT_PRESETS)) {
    throw new TypeError(`Expected one of ${Object.keys(VIT_PRESETS).join(', ')} for "preset" but received ${describe(preset)}`);
  }
  const sizes = VIT_PRESETS[preset ?? 'base'];
  const pooling = rest.pooling ?? 'class-attention';
  const size = imgSize ?? 224;
  const cfg: VitConfig = {
    imgSize: typeof size === 'number' ? [size, size] : [size[0], size[1]],
    patchSize: 16,
    inChans: 3,
    ...sizes,
    mlpRatio: 4,
    qkvBias: true,
    classAttentionLayers: pooling === 'class-attention' ? 2 : 0,
    layerScaleInit: 0.1,
    dropPathRate: 0,
    normEps: 1e-6,
    ...stripUndefined(rest),
    pooling,
  };
  validateVitConfig(cfg);
  return cfg;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function int(cfg: VitConfig, key: keyof VitConfig, min: number): void {
  intInRange(cfg[key], `ViT config "${key}"`, min);
}

export function validateVitConfig(cfg: VitConfig): void {
  const known = new Set(['imgSize', 'patchSize', 'inChans', 'embedDim', 'depth', 'numHeads', 'mlpRatio', 'qkvBias', 'classAttentionLayers', 'layerScaleInit', 'dropPathRate', 'normEps', 'pooling']);
  for (const k of Object.keys(cfg)) if (!known.has(k)) throw new TypeError(`Unknown ViT config field "${k}"`);
  const [h, w] = cfg.imgSize;
  if (!Number.isSafeInteger(h) || !Number.isSafeInteger(w) || h <= 0 || w <= 0) throw new TypeError(`Expected positive integers for ViT config "imgSize" but received ${describe(cfg.imgSize)}`);
  int(cfg, 'patchSize', 1);
  int(cfg, 'inChans', 1);
  int(cfg, 'embedDim', 4);
  int(cfg, 'depth', 0);
  int(cfg, 'numHeads', 1);
  int(cfg, 'classAttentionLayers', 0);
  if (h % cfg.patchSize !== 0 || w % cfg.patchSize !== 0) throw new RangeError(`ViT config: image size ${h}x${w} is not divisible by patchSize ${cfg.patchSize}`);
  if (cfg.embedDim % cfg.numHeads !== 0) throw new RangeError(`ViT config: embedDim ${cfg.embedDim} is not divisible by numHeads ${cfg.numHeads}`);
  if (cfg.embedDim % 4 !== 0) throw new RangeError(`ViT config: embedDim ${cfg.embedDim} must be divisible by 4 for the 2-D sin-cos position embedding`);
  if (!(typeof cfg.mlpRatio === 'number' && cfg.mlpRatio > 0)) throw new TypeError(`Expected a positive number for ViT config "mlpRatio" but received ${describe(cfg.mlpRatio)}`);
  if (typeof cfg.qkvBias !== 'boolean') throw new TypeError(`Expected a boolean for ViT config "qkvBias" but received ${describe(cfg.qkvBias)}`);
  if (!(typeof cfg.dropPathRate === 'number' && cfg.dropPathRate >= 0 && cfg.dropPathRate < 1)) throw new RangeError(`Expected a number in [0, 1) for ViT config "dropPathRate" but received ${describe(cfg.dropPathRate)}`);
  if (!(typeof cfg.normEps === 'number' && cfg.normEps > 0)) throw new TypeError(`Expected a positive number for ViT config "normEps" but received ${describe(cfg.normEps)}`);
  if (typeof cfg.layerScaleInit !== 'number' || !Number.isFinite(cfg.layerScaleInit)) throw new TypeError(`Expected a finite number for ViT config "layerScaleInit" but received ${describe(cfg.layerScaleInit)}`);
  if (!INSTANCE_POOLINGS.includes(cfg.pooling)) throw new TypeError(`Expected one of ${INSTANCE_POOLINGS.join(', ')} for ViT config "pooling" but received ${describe(cfg.pooling)}`);
  if (cfg.pooling === 'class-attention' && cfg.classAttentionLayers < 1) throw new RangeError('ViT config: pooling "class-attention" needs classAttentionLayers >= 1');
  if (cfg.pooling !== 'class-attention' && cfg.classAttentionLayers !== 0) throw new RangeError(`ViT config: pooling "${cfg.pooling}" has no class-attention blocks, but classAttentionLayers is ${cfg.classAttentionLayers}`);
}
