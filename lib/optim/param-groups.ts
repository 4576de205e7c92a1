// Parameter groups: the unit an optimizer applies one set of hyperparameters
// to, and the split into weight-decayed and not-decayed parameters that the
// ExtreMA recipe (after MoCo v3 / MAE / timm) uses.
import { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { nonNegativeFinite } from '../checks';

/** Parameters sharing hyperparameters; unset values come from the optimizer's options. */
export interface ParamGroup {
  params: Tensor[];
  /** parameter names, for error messages and checkpoints (same length as params) */
  names?: string[];
  lr?: number;
  weightDecay?: number;
  /** multiplies the lr that setLr() sets (layer-wise decay, a slower head); default 1 */
  lrScale?: number;
  betas?: [number, number];
  eps?: number;
}

export interface DecayGroupOptions {
  weightDecay: number;
  /** further parameters to exempt from weight decay, by full name */
  skip?: (name: string) => boolean;
}

/** Names (last dotted component) that are never decayed: the authors' no_weight_decay() set. */
export const NO_DECAY_NAMES: readonly string[] = ['pos_embed', 'cls_token'];

/** Whether a parameter is exempt from weight decay under the ExtreMA rule (see paramGroupsForDecay). */
export function isNoDecay(name: string, param: Tensor, skip?: (name: string) => boolean): boolean {
  const last = name.slice(name.lastIndexOf('.') + 1);
  return param.ndim <= 1 || name.endsWith('.bias') || NO_DECAY_NAMES.includes(last) || (skip !== undefined && skip(name));
}

/**
 * Splits named parameters into two groups, `[decay, noDecay]`:
 *  - noDecay (weightDecay 0): parameters with ndim <= 1 (biases, LayerNorm
 *    weights, layer-scale gammas), names ending in `.bias`, names whose last
 *    component is `pos_embed` or `cls_token`, and whatever `skip(name)` accepts;
 *  - decay (weightDecay as given): everything else (matrices, conv kernels).
 * Parameters that do not require grad (frozen, or the fixed sin-cos position
 * embedding) are left out of both groups: the optimizer never updates them.
 * Both groups are always returned, possibly empty, so flat parameter indices
 * in a saved optimizer state do not depend on which exist. Each group carries
 * its names in input order.
 */
export function paramGroupsForDecay(named: readonly (readonly [string, Tensor])[], options: DecayGroupOptions): [ParamGroup, ParamGroup] {
  const where = 'paramGroupsForDecay';
  if (!Array.isArray(named)) throw new TypeError(`Expected an array of [name, Tensor] pairs for "named" of ${where} but received ${describe(named)}`);
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected options { weightDecay } for ${where} but received ${describe(options)}`);
  const wd = nonNegativeFinite(options.weightDecay, `"weightDecay" of ${where}`);
  if (options.skip !== undefined && typeof options.skip !== 'function') {
    throw new TypeError(`Expected a function for "skip" of ${where} but received ${describe(options.skip)}`);
  }
  const decay: ParamGroup = { params: [], names: [], weightDecay: wd };
  const noDecay: ParamGroup = { params: [], names: [], weightDecay: 0 };
  const seen = new Set<Tensor>();
  named.forEach((entry, i) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !(entry[1] instanceof Tensor)) {
      throw new TypeError(`Expected a [name, Tensor] pair for "named[${i}]" of ${where} but received ${describe(entry)}`);
    }
    const [name, p] = entry;
    if (seen.has(p)) throw new Error(`Parameter "${name}" appears twice in "named" of ${where}`);
    seen.add(p);
    if (!p.requiresGrad) return;
    const g = isNoDecay(name, p, options.skip) ? noDecay : decay;
    g.params.push(p);
    g.names!.push(name);
  });
  return [decay, noDecay];
}

/**
 * Splits every group in two, [rest, matching], where `matching(name)` picks
 * parameters whose lr is multiplied by `lrScale` (e.g. a faster predictor,
 * as some BYOL variants train it). The other hyperparameters carry over; the
 * lr ratio holds through setLr(). Groups need names. Empty halves are kept,
 * so the group layout depends only on the number of input groups.
 */
export function scaleLrWhere(groups: readonly ParamGroup[], matching: (name: string) => boolean, lrScale: number): ParamGroup[] {
  const where = 'scaleLrWhere';
  if (typeof matching !== 'function') throw new TypeError(`Expected a function for "matching" of ${where} but received ${describe(matching)}`);
  const scale = nonNegativeFinite(lrScale, `"lrScale" of ${where}`);
  return groups.flatMap((g, gi) => {
    if (g.names === undefined) throw new TypeError(`Expected names for the parameters of group ${gi} of ${where}`);
    const rest: ParamGroup = { ...g, params: [], names: [] };
    const hit: ParamGroup = { ...g, params: [], names: [], lrScale: (g.lrScale ?? 1) * scale };
    g.params.forEach((p, i) => {
      const name = g.names![i]!;
      const to = matching(name) ? hit : rest;
      to.params.push(p);
      to.names!.push(name);
    });
    return [rest, hit];
  });
}
