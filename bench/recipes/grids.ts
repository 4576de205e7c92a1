// Named grids of short pretraining recipes for issue 11 ("make small-scale
// ExtreMA learn"): each entry overrides a shared base, the cpu-small model on
// a fixed 10,000-image Fashion-MNIST subset, so a table row differs from the
// baseline in exactly what its `differs` says. Run with bench/recipes/grid.ts.
import { AUTHORS_HEADS, type PretrainConfigInput } from '../../lib/train/config';
import { mergeConfig } from '../../lib/config';

export interface GridEntry {
  /** Folder name under runs/recipes/<grid>/ and the table's first column. */
  name: string;
  /** What differs from the base, for the table. */
  differs: string;
  /** Overrides merged into the base (deeply; only what differs). */
  config: PretrainConfigInput;
  /**
   * The same recipe as an entry of another grid: its finished result is read
   * back instead of run again, when its recorded recipe equals this one.
   */
  sameAs?: { grid: string; name: string };
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
  model: AUTHORS_HEADS,
  // the preset's values when the grids ran (it now has batch 128 and the predictor at 10x lr, from the tune grid)
  batchSize: 256,
  predictorLrScale: 1,
  trainLimit: 10_000,
  epochs: 10,
  warmupEpochs: 1,
  checkpointEvery: 5,
  knn: { every: 5, bankLimit: 10_000, queryLimit: 2000, probe: true },
};

const BN = { model: { headNorm: 'batch' as const } };

/**
 * The demo recipe (the bundled 5,000 images, batch 128, 39 steps an epoch;
 * BatchNorm heads, constant teacher momentum 0.99; kNN on 5,000 / 1,000 and
 * the probe), shortened to 4 epochs with one of warmup: the base for testing
 * the paper's claims on a recipe that learns. About 5 minutes a config on 2
 * idle cores.
 */
export const DEMO_BASE: PretrainConfigInput = {
  preset: 'demo',
  // the preset's value when the grids ran (it now has the predictor at 10x lr, from the tune grid)
  predictorLrScale: 1,
  epochs: 4,
  warmupEpochs: 1,
  checkpointEvery: 4,
  knn: { every: 1 },
};

/** The heads and teacher that learn at this scale (BatchNorm, constant momentum 0.99): the default grid's bn-m0.99 entry and the tune grid's base. */
const SMALL_LEARNING_HEADS = { model: { headNorm: 'batch' as const, momentumSchedule: 'constant' as const, momentum: 0.99 } };

export const GRIDS: Readonly<Record<string, Grid>> = {
  /** The paper's claims at the demo's scale: masking ratio (Table 1), number of masks (Fig. 4), where the class token comes in (Fig. 5). */
  claims: {
    base: DEMO_BASE,
    entries: [
      { name: 'base', differs: 'none: mask 0.8 x 2 disjoint, class token after the ViT with class attention', config: {} },
      { name: 'mask-0.5', differs: 'mask ratio 0.5 (2 disjoint masks of 24 of the 49 patches)', config: { model: { maskRatio: 0.5 } } },
      { name: 'mask-0.95', differs: 'mask ratio 0.95 (2 visible patches of 49)', config: { model: { maskRatio: 0.95 } } },
      { name: 'masks-1', differs: '1 mask per image', config: { model: { numMasks: 1 } } },
      { name: 'masks-4', differs: '4 disjoint masks per image', config: { model: { numMasks: 4 } } },
      { name: 'pool-cls-token', differs: 'class token at the input (a plain ViT of depth 8 for the 6 + 2 blocks), no class attention', config: { model: { encoder: { pooling: 'class-token', classAttentionLayers: 0, depth: 8 } } } },
      { name: 'pool-mean', differs: 'average pooling of the patch tokens (depth 8), no class attention', config: { model: { encoder: { pooling: 'mean', classAttentionLayers: 0, depth: 8 } } } },
    ],
  },
  /**
   * Table 4's augmentation schemes at the demo's scale (grayscale images: the
   * colour augmentation is brightness and contrast jitter only). Table 4's
   * two-augmentation rows with colour alone or crop alone have no scheme here.
   */
  table4: {
    base: DEMO_BASE,
    entries: [
      { name: 'shared-crop+color', differs: "none: one crop + flip shared, colour drawn per view (the authors' best, the demo's)", config: {} },
      { name: 'none', differs: 'no augmentation: masking only', config: { augment: { scheme: 'none' } } },
      { name: 'color', differs: 'one colour view shared by both branches', config: { augment: { scheme: 'color' } } },
      { name: 'crop', differs: 'one crop + flip view shared by both branches', config: { augment: { scheme: 'crop' } } },
      { name: 'crop+color', differs: 'one crop + flip + colour view shared by both branches', config: { augment: { scheme: 'crop+color' } } },
      { name: 'two-views', differs: 'two independent crop + flip + colour views, one per branch', config: { augment: { scheme: 'two-views' } } },
    ],
  },
  /**
   * The levers the default grid left out, around the recipe that learns
   * (BatchNorm heads, constant momentum 0.99): which of them buys probe
   * points at the same compute, toward a cpu-small recipe whose probe passes
   * raw pixels. Its base is the default grid's `bn-m0.99` entry.
   */
  tune: {
    base: mergeConfig(SMALL_BASE, SMALL_LEARNING_HEADS),
    entries: [
      { name: 'base', differs: 'none: BatchNorm heads, constant momentum 0.99 (the default grid\'s bn-m0.99)', config: {}, sameAs: { grid: 'default', name: 'bn-m0.99' } },
      { name: 'lr-1e-3', differs: 'base lr 1e-3', config: { baseLr: 1e-3 } },
      { name: 'pred-lr10', differs: 'predictor lr x10', config: { predictorLrScale: 10 } },
      { name: 'batch-128', differs: 'batch 128 (78 steps an epoch, lr scaled to 2.5e-4)', config: { batchSize: 128 } },
      { name: 'm-0.98', differs: 'constant momentum 0.98', config: { model: { momentum: 0.98 } } },
      { name: 'crop-0.4', differs: 'crop scale 0.4-1 (from 0.2-1)', config: { augment: { scale: [0.4, 1] } } },
      { name: 'm-0.995', differs: 'constant momentum 0.995', config: { model: { momentum: 0.995 } } },
      { name: 'jitter-0.8', differs: 'brightness and contrast jitter 0.8 (from 0.4)', config: { augment: { jitter: { brightness: 0.8, contrast: 0.8 } } } },
      { name: 'wd-0.05', differs: 'weight decay 0.05 (from 0.1)', config: { weightDecay: 0.05 } },
      { name: 'heads-2048', differs: 'projector and predictor hidden width 2048 (from 1024)', config: { model: { projectorHiddenDim: 2048, predictorHiddenDim: 2048 } } },
      { name: 'e20', differs: '20 epochs, 2 of warmup (twice the steps)', config: { epochs: 20, warmupEpochs: 2 } },
    ],
  },
  default: {
    base: SMALL_BASE,
    entries: [
      { name: 'baseline', differs: "none: the authors' LayerNorm heads, cosine momentum from 0.996", config: {} },
      { name: 'bn', differs: "BatchNorm heads (BYOL's original)", config: BN },
      { name: 'bn-m0.99', differs: 'BatchNorm heads, constant momentum 0.99', config: SMALL_LEARNING_HEADS },
      { name: 'bn-pred-lr10', differs: 'BatchNorm heads, predictor lr x10', config: { ...BN, predictorLrScale: 10 } },
      { name: 'mask-0.5', differs: 'mask ratio 0.5', config: { model: { maskRatio: 0.5 } } },
      { name: 'masks-1', differs: '1 mask per image', config: { model: { numMasks: 1 } } },
      { name: 'masks-4', differs: '4 masks per image', config: { model: { numMasks: 4 } } },
      { name: 'lr-1e-3', differs: 'base lr 1e-3', config: { baseLr: 1e-3 } },
      { name: 'patch-7', differs: 'patch 7 (16 tokens)', config: { model: { encoder: { patchSize: 7 } } } },
    ],
  },
};
