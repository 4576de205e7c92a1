// Named grids of short pretraining recipes for issue 11 ("make small-scale
// ExtreMA learn"): each entry overrides a shared base, the cpu-small model on
// a fixed 10,000-image Fashion-MNIST subset, so a table row differs from the
// baseline in exactly what its `differs` says. Run with bench/recipes/grid.ts.
import type { PretrainConfigInput } from '../../lib/train/config';

export interface GridEntry {
  /** Folder name under runs/recipes/<grid>/ and the table's first column. */
  name: string;
  /** What differs from the base, for the table. */
  differs: string;
  /** Overrides merged into the base (deeply; only what differs). */
  config: PretrainConfigInput;
}

export interface Grid {
  base: PretrainConfigInput;
  entries: GridEntry[];
}

/**
 * The cpu-small recipe (patch 4, width 192, depth 6, LayerNorm heads, lr 5e-4
 * at batch 256) on the first 10,000 training images: 39 steps an epoch. Ten
 * epochs with one warmup epoch are sized to about 10-15 minutes a config on 2
 * cores with the kNN monitor (10k bank, 2k queries) and the cached linear
 * probe before and after; the PyTorch runs saw BatchNorm heads pass
 * their start by epoch 4-5 on this subset.
 */
export const SMALL_BASE: PretrainConfigInput = {
  preset: 'cpu-small',
  trainLimit: 10_000,
  epochs: 10,
  warmupEpochs: 1,
  checkpointEvery: 5,
  knn: { every: 5, bankLimit: 10_000, queryLimit: 2000, probe: true },
};

const BN = { model: { headNorm: 'batch' as const } };

export const GRIDS: Readonly<Record<string, Grid>> = {
  default: {
    base: SMALL_BASE,
    entries: [
      { name: 'baseline', differs: "none: the authors' LayerNorm heads, cosine momentum from 0.996", config: {} },
      { name: 'bn', differs: "BatchNorm heads (BYOL's original)", config: BN },
      { name: 'bn-m0.99', differs: 'BatchNorm heads, constant momentum 0.99', config: { model: { headNorm: 'batch', momentumSchedule: 'constant', momentum: 0.99 } } },
      { name: 'bn-pred-lr10', differs: 'BatchNorm heads, predictor lr x10', config: { ...BN, predictorLrScale: 10 } },
      { name: 'mask-0.5', differs: 'mask ratio 0.5', config: { model: { maskRatio: 0.5 } } },
      { name: 'mask-0.9', differs: 'mask ratio 0.9', config: { model: { maskRatio: 0.9 } } },
      { name: 'masks-1', differs: '1 mask per image', config: { model: { numMasks: 1 } } },
      { name: 'masks-4', differs: '4 masks per image', config: { model: { numMasks: 4 } } },
      { name: 'lr-1e-3', differs: 'base lr 1e-3', config: { baseLr: 1e-3 } },
      { name: 'patch-7', differs: 'patch 7 (16 tokens)', config: { model: { encoder: { patchSize: 7 } } } },
    ],
  },
};
