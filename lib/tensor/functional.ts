// Neural-network functions over tensors, named and defaulted as in
// torch.nn.functional. Each is one ATen op or a short composition of them.
import * as aten from './ops.generated';
import { describe } from './dtype';
import { Tensor } from './tensor';
import { native } from '../native';

function needTensor(x: unknown, what: string, fn: string): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`Expected a Tensor for "${what}" of ${fn} but received ${describe(x)}`);
  return x;
}

/** Parameters must match the input's dtype, except under autocast, which casts them itself. */
function sameDType(input: Tensor, param: Tensor | null | undefined, what: string, fn: string): void {
  if (param === null || param === undefined) return;
  if (param.dtype !== input.dtype && !autocastActive(input)) {
    throw new TypeError(`Expected a tensor of dtype ${input.dtype} for "${what}" of ${fn} but received ${param.dtype}`);
  }
}

function autocastActive(input: Tensor): boolean {
  const device = input.device;
  const i = device.indexOf(':');
  return native.autocastState(i < 0 ? device : device.slice(0, i))[0];
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return aten.cat(tensors, dim);
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return aten.stack(tensors, dim);
}

/** Elementwise choice: condition ? a : b. */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return aten.where_self(condition, a, b);
  if (a instanceof Tensor && typeof b === 'number') return aten.where_ScalarOther(condition, a, b);
  if (typeof a === 'number' && b instanceof Tensor) return aten.where_ScalarSelf(condition, a, b);
  if (typeof a === 'number' && typeof b === 'number') return aten.where_Scalar(condition, a, b);
  throw new TypeError(`Expected Tensors or numbers for where() but received ${describe(a)} and ${describe(b)}`);
}

export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  if (typeof equation !== 'string') throw new TypeError(`Expected an equation string for einsum but received ${describe(equation)}`);
  return aten.einsum(equation, operands);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  return aten.matmul(a, b);
}

/** y = x W^T + b, with W of shape [out, in]. */
export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  needTensor(input, 'input', 'linear');
  const w = needTensor(weight, 'weight', 'linear');
  if (w.ndim !== 2) throw new TypeError(`Expected a 2-D "weight" for linear but received shape [${w.shape.join(', ')}]`);
  sameDType(input, w, 'weight', 'linear');
  sameDType(input, bias, 'bias', 'linear');
  const inFeatures = input.size(-1);
  if (w.size(1) !== inFeatures) {
    throw new TypeError(`linear: input has ${inFeatures} features but weight expects ${w.size(1)} (weight shape [${w.shape.join(', ')}])`);
  }
  return aten.linear(input, w, bias ?? null);
}

export interface Conv2dOptions {
  stride?: number | readonly number[];
  padding?: number | readonly number[];
  dilation?: number | readonly number[];
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  needTensor(input, 'input', 'conv2d');
  needTensor(weight, 'weight', 'conv2d');
  if (input.ndim !== 4 && input.ndim !== 3) {
    throw new TypeError(`Expected a 3-D or 4-D "input" for conv2d but received shape [${input.shape.join(', ')}]`);
  }
  sameDType(input, weight, 'weight', 'conv2d');
  sameDType(input, bias, 'bias', 'conv2d');
  return aten.conv2d(input, weight, bias ?? null, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1);
}

export function softmax(input: Tensor, dim: number): Tensor {
  return aten.softmax_int(input, dim);
}

export function logSoftmax(input: Tensor, dim: number): Tensor {
  return aten.log_softmax_int(input, dim);
}

export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const shape = input.shape;
  const tail = shape.slice(shape.length - normalizedShape.length);
  if (normalizedShape.length > shape.length || tail.some((d, i) => d !== normalizedShape[i])) {
    throw new TypeError(`layerNorm: normalizedShape [${normalizedShape.join(', ')}] does not match the end of input shape [${shape.join(', ')}]`);
  }
  sameDType(input, weight, 'weight', 'layerNorm');
  sameDType(input, bias, 'bias', 'layerNorm');
  return aten.layer_norm(input, normalizedShape, weight ?? null, bias ?? null, eps);
}

export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return aten.gelu(input, approximate);
}

export function relu(input: Tensor): Tensor {
  return aten.relu(input);
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout probability has to be between 0 and 1, but got ${p}`);
  if (!training || p === 0) return aten.alias(input);
  return aten.dropout(input, p, true);
}

export interface AttentionOptions {
  attnMask?: Tensor | null;
  dropoutP?: number;
  isCausal?: boolean;
  scale?: number | null;
}

/** softmax(q k^T * scale + mask) v over the last two dimensions. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  if (q.ndim < 2 || q.size(-1) !== k.size(-1)) {
    throw new TypeError(`scaledDotProductAttention: query [${q.shape.join(', ')}] and key [${k.shape.join(', ')}] need the same last dimension`);
  }
  return aten.scaled_dot_product_attention(q, k, v, o.attnMask ?? null, o.dropoutP ?? 0, o.isCausal ?? false, o.scale ?? null);
}

/** x / max(||x||_p, eps) along dim (F.normalize). */
export function normalize(input: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor {
  const norm = aten.linalg_vector_norm(input, p, [dim], true);
  const clamped = aten.clamp_min(norm, eps);
  norm.dispose();
  const expanded = aten.expand_as(clamped, input);
  const out = aten.div_Tensor(input, expanded);
  clamped.dispose();
  expanded.dispose();
  return out;
}

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

function reductionCode(r: Reduction): number {
  const code = REDUCTION[r];
  if (code === undefined) throw new TypeError(`Expected "none", "mean" or "sum" for "reduction" but received ${describe(r)}`);
  return code;
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross entropy between logits [N, C] and class indices [N] (or probabilities [N, C]). */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  needTensor(logits, 'logits', 'crossEntropy');
  needTensor(target, 'target', 'crossEntropy');
  return aten.cross_entropy_loss(logits, target, o.weight ?? null, reductionCode(o.reduction ?? 'mean'), o.ignoreIndex ?? -100, o.labelSmoothing ?? 0);
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return aten.mse_loss(input, target, reductionCode(reduction));
}

export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return aten.cosine_similarity(a, b, dim, eps);
}

export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return aten.one_hot(indices, numClasses);
}
