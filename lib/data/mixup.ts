// Mixup and CutMix for fine-tuning, as timm's Mixup(mode='batch') that the
// authors' BEiT-based fine-tuning runs (mixup 0.8, cutmix 1.0, prob 1,
// switch prob 0.5, label smoothing 0.1): one lambda per batch, every image
// mixed with its mirror in the batch (timm pairs image i with B-1-i:
// x.flip(0)), targets the label-smoothed one-hot vectors mixed the same way,
// trained with soft-target cross-entropy.
//
// Randomness: the per-batch draws (apply, switch, the Beta lambda, the box
// centre) are a handful of numbers, taken as float64 uniforms from the
// generator and turned into samples in JS; the pixels never leave the device.
import { logSoftmax } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { Tensor } from '../tensor/tensor';
import * as aten from '../tensor/ops.generated';
import type { Generator } from '../runtime/generator';
import { fail, intInRange, nonNegativeFinite, probability } from '../checks';
import { checkImages, drawUniform } from './color';

export interface MixupConfig {
  /** Beta(a, a) for mixup; 0 disables mixup. timm/BEiT: 0.8. */
  mixupAlpha: number;
  /** Beta(a, a) for cutmix; 0 disables cutmix. timm/BEiT: 1.0. */
  cutmixAlpha: number;
  /** With both enabled, the probability that a batch uses cutmix instead of mixup. 0.5. */
  switchProb: number;
  /** Probability that a batch is mixed at all. 1.0. */
  prob: number;
  /** Label smoothing of the targets. 0.1. */
  labelSmoothing: number;
  numClasses: number;
}

/** A cutmix box in pixels: rows yl..yh-1 and columns xl..xh-1 (timm's order). */
export type CutmixBox = readonly [yl: number, yh: number, xl: number, xh: number];

/** What one batch is mixed with: lam = weight of the image itself; box = null for mixup (or no mixing when lam = 1). */
export interface MixParams {
  lam: number;
  box: CutmixBox | null;
}

function checkMixupConfig(cfg: MixupConfig): void {
  if (typeof cfg !== 'object' || cfg === null) fail('a mixup config object', 'the mixup config', cfg, TypeError);
  nonNegativeFinite(cfg.mixupAlpha, 'mixupAlpha');
  nonNegativeFinite(cfg.cutmixAlpha, 'cutmixAlpha');
  probability(cfg.switchProb, 'switchProb');
  probability(cfg.prob, 'prob');
  probability(cfg.labelSmoothing, 'labelSmoothing');
  intInRange(cfg.numClasses, 'numClasses', 1);
  if (cfg.prob > 0 && cfg.mixupAlpha === 0 && cfg.cutmixAlpha === 0) {
    fail('mixupAlpha > 0 or cutmixAlpha > 0 when prob > 0', 'the mixup config', [cfg.mixupAlpha, cfg.cutmixAlpha]);
  }
}

/**
 * timm's rand_bbox (margin 0) with its lambda correction: a box of
 * int(H sqrt(1 - lam)) x int(W sqrt(1 - lam)) centred at (cy, cx), clipped to
 * the image; lam becomes 1 - box area / image area.
 */
export function cutmixBox(height: number, width: number, lam: number, cy: number, cx: number): MixParams & { box: CutmixBox } {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(height * ratio);
  const cutW = Math.trunc(width * ratio);
  const clip = (v: number, n: number) => Math.min(n, Math.max(0, v));
  const yl = clip(cy - Math.floor(cutH / 2), height);
  const yh = clip(cy + Math.floor((cutH + 1) / 2), height);
  const xl = clip(cx - Math.floor(cutW / 2), width);
  const xh = clip(cx + Math.floor((cutW + 1) / 2), width);
  return { box: [yl, yh, xl, xh], lam: 1 - ((yh - yl) * (xh - xl)) / (height * width) };
}

/** Uniforms in [0, 1) from the generator, 16 float64 at a time, handed out one by one. */
function uniformStream(generator: Generator | undefined): () => number {
  let buf: Float64Array = new Float64Array(0);
  let i = 0;
  return () => {
    if (i === buf.length) {
      buf = scope(() => drawUniform([16], generator?.device ?? 'cpu', generator, 'float64').toTypedArray() as Float64Array);
      i = 0;
    }
    return buf[i++]!;
  };
}

/** Gamma(a, 1) by Marsaglia and Tsang (a < 1 through Gamma(a + 1) U^(1/a)); normals by Box-Muller. */
function gamma(a: number, u: () => number): number {
  if (a < 1) return gamma(a + 1, u) * Math.pow(1 - u(), 1 / a);
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    const v = (1 + c * z) ** 3;
    if (v <= 0) continue;
    const x = 1 - u();
    if (Math.log(x) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Beta(a, a) = G1 / (G1 + G2). */
function beta(a: number, u: () => number): number {
  const g1 = gamma(a, u);
  const g2 = gamma(a, u);
  return g1 + g2 > 0 ? g1 / (g1 + g2) : 0.5;
}

/**
 * The per-batch draw of timm's Mixup._params_per_batch and, for cutmix,
 * cutmix_bbox_and_lam: apply with prob; cutmix with switchProb when both
 * are enabled; lam ~ Beta(alpha, alpha); the box centre uniform over the
 * image. Not applied: { lam: 1, box: null }.
 */
export function sampleMixParams(cfg: MixupConfig, height: number, width: number, generator?: Generator): MixParams {
  checkMixupConfig(cfg);
  const u = uniformStream(generator);
  if (!(u() < cfg.prob)) return { lam: 1, box: null };
  const cutmix = cfg.mixupAlpha > 0 && cfg.cutmixAlpha > 0 ? u() < cfg.switchProb : cfg.cutmixAlpha > 0;
  const lam = beta(cutmix ? cfg.cutmixAlpha : cfg.mixupAlpha, u);
  if (!cutmix) return { lam, box: null };
  const cy = Math.min(height - 1, Math.floor(u() * height));
  const cx = Math.min(width - 1, Math.floor(u() * width));
  return cutmixBox(height, width, lam, cy, cx);
}

function checkLabels(labels: unknown, b: number, numClasses: number): Tensor {
  if (!(labels instanceof Tensor)) fail('an int64 Tensor of labels', 'the labels', labels, TypeError);
  if (labels.dtype !== 'int64' || labels.ndim !== 1 || labels.shape[0] !== b) {
    fail(`int64 labels of shape [${b}]`, 'the labels', `${labels.dtype} [${labels.shape.join(', ')}]`);
  }
  const [lo, hi] = scope(() => [labels.min().item(), labels.max().item()] as number[]);
  if (b > 0 && (lo! < 0 || hi! >= numClasses)) fail(`labels in [0, ${numClasses - 1}]`, 'the labels', `labels from ${lo} to ${hi}`);
  return labels;
}

/** Label-smoothed one-hot targets, float32 [B, numClasses]: 1 - s + s/K on the label, s/K elsewhere (timm's one_hot). */
export function smoothTargets(labels: Tensor, numClasses: number, smoothing: number): Tensor {
  intInRange(numClasses, 'numClasses', 1);
  probability(smoothing, 'the label smoothing');
  if (!(labels instanceof Tensor) || labels.ndim !== 1) fail('int64 labels of shape [B]', 'the labels', labels, TypeError);
  checkLabels(labels, labels.shape[0]!, numClasses);
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  return scope(() => aten.full([labels.shape[0]!, numClasses], off, 'float32', null, labels.device).scatter_(1, labels.view(-1, 1), on));
}

/**
 * @internal Mixes a batch with explicit parameters (the test entry point):
 * cutmix pastes the box of the flipped batch, mixup blends with it, and the
 * targets are lam y + (1 - lam) y.flip(0) of the smoothed one-hot labels.
 */
export function mixWith(images: Tensor, labels: Tensor, mix: MixParams, numClasses: number, smoothing: number): { images: Tensor; targets: Tensor } {
  const x = checkImages(images);
  const b = x.shape[0]!;
  checkLabels(labels, b, numClasses);
  const { lam, box } = mix;
  if (typeof lam !== 'number' || !(lam >= 0 && lam <= 1)) fail('a mixing weight lam in [0, 1]', 'lam', lam);
  return scope(() => {
    const y = smoothTargets(labels, numClasses, smoothing);
    const targets = y.mul(lam).add_(y.flip(0).mul(1 - lam));
    if (lam === 1) return { images: x.clone(), targets };
    let out: Tensor;
    if (box !== null) {
      const [yl, yh, xl, xh] = box;
      const [, , h, w] = x.shape as number[];
      if (!(yl! >= 0 && yl! <= yh! && yh! <= h! && xl! >= 0 && xl! <= xh! && xh! <= w!)) fail(`a box inside the ${h} x ${w} image`, 'the cutmix box', [...box]);
      out = x.clone();
      if (yh! > yl! && xh! > xl!) out.narrow(2, yl!, yh! - yl!).narrow(3, xl!, xh! - xl!).copy_(x.flip(0).narrow(2, yl!, yh! - yl!).narrow(3, xl!, xh! - xl!));
    } else {
      out = x.mul(lam).add_(x.flip(0).mul(1 - lam));
    }
    return { images: out, targets };
  });
}

/**
 * Mixup or CutMix of a batch (timm's Mixup, mode 'batch'); returns new
 * tensors (the inputs are left as they are). The batch size must be even,
 * as timm requires (image i is mixed with image B-1-i).
 */
export function mixupCutmix(images: Tensor, labels: Tensor, cfg: MixupConfig, generator?: Generator): { images: Tensor; targets: Tensor } {
  const x = checkImages(images);
  checkMixupConfig(cfg);
  if (x.shape[0]! % 2 !== 0) fail('an even batch size for mixup/cutmix', 'the images', `shape [${x.shape.join(', ')}]`);
  checkLabels(labels, x.shape[0]!, cfg.numClasses);
  const mix = sampleMixParams(cfg, x.shape[2]!, x.shape[3]!, generator);
  return mixWith(x, labels, mix, cfg.numClasses, cfg.labelSmoothing);
}

/** timm's SoftTargetCrossEntropy: mean over the batch of sum(-target * log_softmax(logits)). */
export function softTargetCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  if (!(logits instanceof Tensor) || logits.ndim !== 2) fail('logits of shape [B, K]', 'the logits', logits, TypeError);
  if (!(targets instanceof Tensor) || targets.shape.join() !== logits.shape.join()) {
    fail(`targets of shape [${logits.shape.join(', ')}]`, 'the targets', targets instanceof Tensor ? `shape [${targets.shape.join(', ')}]` : targets);
  }
  return scope(() => targets.neg().mul(logSoftmax(logits, -1)).sum(-1).mean());
}
