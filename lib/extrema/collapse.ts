// Signs of representation collapse, measured on one batch of the teacher
// (issue 11): BYOL-style objectives can be minimised by a constant target,
// and a falling loss alone cannot tell learning from collapse.
//  - spread: the mean per-dimension standard deviation of the L2-normalised
//    projections, times sqrt(dim): about 1 for directions spread uniformly on
//    the sphere, 0 when every image maps to the same point (SimSiam's
//    collapse measure, scaled so the healthy value does not depend on dim);
//  - effective rank of the instance features: exp of the entropy of the
//    normalised singular values of the centred batch (Roy & Vetterli 2007),
//    between 1 (one direction) and min(batch, width);
//  - mean cosine between the projections of different images: 1 when
//    collapsed, near 0 when spread.
import type { Tensor } from '../tensor/tensor';
import { noGrad } from '../autograd';
import { scope } from '../tensor/scope';
import { stack, normalize } from '../tensor/functional';
import * as aten from '../tensor/ops.generated';

/** Below this spread the targets are collapsing: the authors' LayerNorm heads sat at 0.23-0.25 while kNN fell, BatchNorm heads at 0.87-0.95 while it rose (issue 11's side-by-side PyTorch runs). */
export const COLLAPSE_SPREAD_WARNING = 0.5;

export interface CollapseStats {
  spread: number;
  effectiveRank: number;
  meanCosine: number;
}

export const COLLAPSE_STAT_NAMES = ['spread', 'effectiveRank', 'meanCosine'] as const;

/**
 * [spread, effective rank, mean cosine] as one float32 [3] tensor on the
 * inputs' device (read it back with the loss: no extra host sync).
 * targets: teacher projections [B, d]; features: teacher instance features [B, D]; B >= 2.
 */
export function collapseStats(targets: Tensor, features: Tensor): Tensor {
  if (targets.ndim !== 2 || features.ndim !== 2 || targets.shape[0] !== features.shape[0]) {
    throw new TypeError(`Expected targets [B, d] and features [B, D] with the same B but received [${targets.shape.join(', ')}] and [${features.shape.join(', ')}]`);
  }
  const b = targets.shape[0]!;
  if (b < 2) throw new RangeError(`Expected at least 2 images to measure collapse but received ${b}`);
  return noGrad(() => scope(() => {
    const z = normalize(targets.to('float32'), 2, 1);
    const d = z.shape[1]!;
    const spread = z.std(0, false, 0).mean().mul(Math.sqrt(d));
    const f = features.to('float32');
    const centred = f.sub(f.mean(0, true));
    const s = aten.linalg_svdvals(centred);
    const p = s.div(s.sum().clamp(1e-12, null));
    const entropy = p.mul(p.clamp(1e-12, null).log()).sum().neg();
    const effectiveRank = entropy.exp();
    const total = z.sum(0);
    const meanCosine = total.mul(total).sum().sub(b).div(b * (b - 1));
    return stack([spread, effectiveRank, meanCosine]);
  }));
}

/** The three numbers of a collapseStats tensor read back (a host sync: prefer reading it with the loss). */
export function readCollapseStats(t: Tensor): CollapseStats {
  const [spread, effectiveRank, meanCosine] = Array.from(t.to('float64').cpu().toTypedArray() as Float64Array);
  return { spread: spread!, effectiveRank: effectiveRank!, meanCosine: meanCosine! };
}
