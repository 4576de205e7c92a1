// Layer-wise learning-rate decay for fine-tuning a ViT (BEiT's
// get_parameter_groups with LayerDecayValueAssigner, which the authors'
// run_class_finetuning.py uses): the lower a parameter sits in the network,
// the smaller its learning rate.
import type { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { isPlainObject, nonNegativeFinite, numberInRange } from '../checks';
import { isNoDecay, type ParamGroup } from './param-groups';
import type { VitClassifier } from '../nn/vit-classifier';

/**
 * The layer of a parameter in a ViT of `depth` blocks: the embeddings
 * (patch_embed.*, pos_embed, cls_token) are layer 0, blocks.i.* is layer
 * i + 1, everything after the blocks (fc_norm, head) is layer depth + 1.
 */
export function vitLayerId(name: string, depth: number): number {
  if (name === 'pos_embed' || name === 'cls_token' || name.startsWith('patch_embed.')) return 0;
  const m = /^blocks\.(\d+)\./.exec(name);
  return m === null ? depth + 1 : Number(m[1]) + 1;
}

/**
 * One group per (layer, decayed or not), in the order each first appears
 * among the model's parameters (as BEiT's dict of groups), each with its
 * names, lrScale = layerDecay^(depth + 1 - layer) and weightDecay (0 for 1-D
 * parameters, biases, pos_embed and cls_token; see isNoDecay). Parameters
 * that do not require grad are left out, as in BEiT.
 */
export function layerDecayParamGroups(model: VitClassifier, options: { weightDecay: number; layerDecay: number }): ParamGroup[] {
  const where = 'layerDecayParamGroups';
  if (typeof model?.namedParameters !== 'function' || !Number.isSafeInteger(model.depth)) {
    throw new TypeError(`Expected a VitClassifier for "model" of ${where} but received ${describe(model)}`);
  }
  if (!isPlainObject(options)) throw new TypeError(`Expected options { weightDecay, layerDecay } for ${where} but received ${describe(options)}`);
  const wd = nonNegativeFinite(options.weightDecay, `"weightDecay" of ${where}`);
  const decay = numberInRange(options.layerDecay, `"layerDecay" of ${where}`, 0, 1, { lowOpen: true });
  const depth = model.depth;
  const groups = new Map<string, ParamGroup & { params: Tensor[]; names: string[] }>();
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const layer = vitLayerId(name, depth);
    const noDecay = isNoDecay(name, p);
    const key = `${layer}:${noDecay ? 'no_decay' : 'decay'}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { params: [], names: [], weightDecay: noDecay ? 0 : wd, lrScale: Math.pow(decay, depth + 1 - layer) };
      groups.set(key, g);
    }
    g.params.push(p);
    g.names.push(name);
  }
  return [...groups.values()];
}
