// The Tensor: a JS object holding a handle into the addon's tensor table.
// Methods are thin: each calls one generated ATen wrapper, so autograd,
// autocast and devices behave exactly as in PyTorch.
import { native, type Handle } from '../native';
import * as aten from './ops.generated';
import { assertDType, describe, dtypeFromCode, isDType, isFloating, typedArrayFor, type DType, type TypedArrayOf } from './dtype';
import { assertDevice, type Device } from './device';
import { adopt, forget, keep as keepTensor, type Owned } from './scope';
import { indexTensor, type IndexSpec } from './indexing';
import type { Scalar } from './op-runtime';

export type Shape = readonly number[];

/** A nested array of numbers or booleans, as `toArray()` returns and `tensor()` takes. */
export type NestedArray = number | boolean | NestedArray[];

export interface ToOptions {
  dtype?: DType;
  device?: Device;
  nonBlocking?: boolean;
  copy?: boolean;
}

const FLAG_REQUIRES_GRAD = 1;
const FLAG_IS_LEAF = 2;
const FLAG_CONTIGUOUS = 4;

function other(x: Tensor | Scalar, op: string): Tensor | Scalar {
  if (x instanceof Tensor || typeof x === 'number' || typeof x === 'boolean') return x;
  throw new TypeError(`Expected a Tensor or a number for "other" of ${op} but received ${describe(x)}`);
}

const TO_OPTION_KEYS: ReadonlySet<string> = new Set(['dtype', 'device', 'nonBlocking', 'copy']);

// Anything but a dtype, a device or a plain options object is refused: an
// array, a Map or a misspelt key would otherwise leave the tensor unchanged.
function toOptions(target: unknown): ToOptions {
  if (typeof target === 'string') return isDType(target) ? { dtype: target } : { device: assertDevice(target) };
  const proto = typeof target === 'object' && target !== null ? Object.getPrototypeOf(target) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`Expected a device, a dtype or an options object { dtype, device, nonBlocking, copy } for to() but received ${describe(target)}`);
  }
  const opts = target as Record<string, unknown>;
  for (const key of Object.keys(opts)) {
    if (!TO_OPTION_KEYS.has(key)) throw new TypeError(`Unknown option "${key}" for to(); expected dtype, device, nonBlocking or copy`);
  }
  for (const key of ['nonBlocking', 'copy']) {
    if (opts[key] !== undefined && typeof opts[key] !== 'boolean') throw new TypeError(`Expected a boolean for "${key}" of to() but received ${describe(opts[key])}`);
  }
  return opts as ToOptions;
}

function dimsArg(dim: number | readonly number[] | undefined | null): readonly number[] | null {
  if (dim === undefined || dim === null) return null;
  return typeof dim === 'number' ? [dim] : dim;
}

export class Tensor implements Owned {
  /** @internal handle in the native table; -1 once disposed */
  _id: Handle;
  /** @internal */ _kept = false;
  /** @internal */ _registered = 0;
  private _shape: number[] | undefined;
  private _dtype: DType | undefined;

  private constructor(id: Handle) {
    this._id = id;
  }

  /** @internal Wraps a fresh handle; every tensor is born here. */
  static _wrap(id: Handle): Tensor {
    const t = new Tensor(id);
    adopt(t);
    return t;
  }

  /** @internal Forgets cached metadata after an in-place op. */
  _touch(): void {
    this._shape = undefined;
  }

  /** The native handle; throws if the tensor was disposed. */
  get id(): Handle {
    if (this._id < 0) throw new Error('Tensor has been disposed; it cannot be used any more');
    return this._id;
  }

  get isDisposed(): boolean {
    return this._id < 0 || !native.isLive(this._id);
  }

  /** Frees the native memory now. Using the tensor afterwards throws. */
  dispose(): void {
    if (this._id < 0) return;
    const id = this._id;
    this._id = -1;
    forget(this);
    native.release(id);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Keeps this tensor alive past every enclosing scope(). */
  keep(): this {
    return keepTensor(this);
  }

  // ---- metadata ----------------------------------------------------------

  get shape(): number[] {
    if (this._shape === undefined) this._shape = native.shape(this.id);
    return this._shape.slice();
  }

  get ndim(): number {
    if (this._shape === undefined) this._shape = native.shape(this.id);
    return this._shape.length;
  }

  get numel(): number {
    if (this._shape === undefined) this._shape = native.shape(this.id);
    let n = 1;
    for (const d of this._shape) n *= d;
    return n;
  }

  /** Size of one dimension (negative counts from the end). */
  size(dim: number): number {
    if (!Number.isInteger(dim)) throw new TypeError(`Expected an integer for "dim" of size() but received ${describe(dim)}`);
    const shape = this._shape ?? (this._shape = native.shape(this.id));
    const d = dim < 0 ? dim + shape.length : dim;
    if (d < 0 || d >= shape.length) {
      throw new RangeError(`Dimension ${dim} is out of range for a tensor with ${shape.length} dimensions (expected ${shape.length === 0 ? 'none' : `-${shape.length} to ${shape.length - 1}`})`);
    }
    return shape[d] as number;
  }

  get strides(): number[] {
    return native.strides(this.id);
  }

  get dtype(): DType {
    if (this._dtype === undefined) this._dtype = dtypeFromCode(native.scalarType(this.id));
    return this._dtype;
  }

  get device(): string {
    return native.device(this.id);
  }

  /**
   * The in-place modification counter (libtorch's _version): it grows with
   * every in-place write, so a cache made from the values can tell it is
   * stale. -1 for an inference tensor, which keeps none.
   */
  get version(): number {
    return native.version(this.id);
  }

  get isContiguous(): boolean {
    return (native.flags(this.id) & FLAG_CONTIGUOUS) !== 0;
  }

  get requiresGrad(): boolean {
    return (native.flags(this.id) & FLAG_REQUIRES_GRAD) !== 0;
  }

  set requiresGrad(flag: boolean) {
    this.requiresGrad_(flag);
  }

  get isLeaf(): boolean {
    return (native.flags(this.id) & FLAG_IS_LEAF) !== 0;
  }

  /** Name of the autograd node that made this tensor, or null for a leaf. */
  get gradFn(): string | null {
    return native.gradFnName(this.id);
  }

  /** The accumulated gradient (a new handle on it each read), or null. */
  get grad(): Tensor | null {
    const g = native.getGrad(this.id);
    return g === null ? null : Tensor._wrap(g);
  }

  set grad(g: Tensor | null) {
    if (g !== null && !(g instanceof Tensor)) throw new TypeError(`Expected a Tensor or null for "grad" but received ${describe(g)}`);
    native.setGrad(this.id, g === null ? null : g.id);
  }

  requiresGrad_(flag = true): this {
    if (typeof flag !== 'boolean') throw new TypeError(`Expected a boolean for "requiresGrad" but received ${describe(flag)}`);
    if (flag && !isFloating(this.dtype)) {
      throw new TypeError(`Only floating point tensors can require gradients, but this tensor is ${this.dtype}`);
    }
    native.setRequiresGrad(this.id, flag);
    return this;
  }

  retainGrad(): this {
    aten.retain_grad(this);
    return this;
  }

  /** Runs backpropagation from this tensor (a scalar unless `gradient` is given). */
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean; inputs?: Tensor[] } = {}): void {
    if (gradient === undefined && this.numel !== 1) {
      throw new Error(`backward() without a gradient needs a scalar output but this tensor has shape [${this.shape.join(', ')}]`);
    }
    native.backward([this.id], gradient === undefined ? null : [gradient.id], options.retainGraph, options.createGraph ?? false,
      options.inputs ? options.inputs.map((t) => t.id) : null);
  }

  detach(): Tensor {
    return aten.detach(this);
  }

  detach_(): this {
    aten.detach_(this);
    return this;
  }

  clone(): Tensor {
    return aten.clone(this);
  }

  // ---- conversion and readback -------------------------------------------

  /** Moves and/or casts: to('cuda'), to('float16'), to({ device, dtype, nonBlocking, copy }). */
  to(target: Device | DType | ToOptions): Tensor {
    const opts = toOptions(target);
    const dtype = opts.dtype === undefined ? undefined : assertDType(opts.dtype, '"dtype" of to()');
    const device = opts.device === undefined ? undefined : assertDevice(opts.device);
    if (device === undefined) return aten.to_dtype(this, dtype ?? this.dtype, opts.nonBlocking ?? false, opts.copy ?? false);
    return aten.to_device(this, device, dtype ?? this.dtype, opts.nonBlocking ?? false, opts.copy ?? false);
  }

  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }

  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }

  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  half(): Tensor { return this.to('float16'); }
  bfloat16(): Tensor { return this.to('bfloat16'); }
  long(): Tensor { return this.to('int64'); }
  int(): Tensor { return this.to('int32'); }
  bool(): Tensor { return this.to('bool'); }
  byte(): Tensor { return this.to('uint8'); }

  /** The single element as a JS number (or boolean). */
  item(): number {
    return native.item(this.id) as number;
  }

  /** A copy of the elements in row-major order (float16/bfloat16 as raw Uint16 bits). */
  toTypedArray<D extends DType = DType>(): TypedArrayOf[D] {
    return typedArrayFor(this.dtype as D, native.toBuffer(this.id));
  }

  dataSync<D extends DType = DType>(): TypedArrayOf[D] {
    return this.toTypedArray<D>();
  }

  /** Like toTypedArray, but the device-to-host copy runs off the JS thread. */
  async data<D extends DType = DType>(): Promise<TypedArrayOf[D]> {
    const dtype = this.dtype as D;
    return typedArrayFor(dtype, await native.toBufferAsync(this.id));
  }

  /** Elements as nested JS arrays of numbers (int64 beyond 2^53 loses precision). */
  toArray(): NestedArray {
    const dtype = this.dtype;
    let flat: ArrayLike<number | bigint>;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const wide = this.to('float32');
      flat = wide.toTypedArray();
      wide.dispose();
    } else {
      flat = this.toTypedArray();
    }
    const shape = this.shape;
    const read = (i: number): number | boolean => {
      const v = flat[i] as number | bigint;
      if (dtype === 'bool') return v !== 0;
      return typeof v === 'bigint' ? Number(v) : v;
    };
    if (shape.length === 0) return read(0);
    let offset = 0;
    const build = (d: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let i = 0; i < (shape[d] as number); i++) out.push(d === shape.length - 1 ? read(offset++) : build(d + 1));
      return out;
    };
    return build(0);
  }

  toString(): string {
    if (this._id < 0) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---- views and shape ---------------------------------------------------

  view(...shape: number[] | [Shape]): Tensor { return aten.view(this, flatShape(shape)); }
  reshape(...shape: number[] | [Shape]): Tensor { return aten.reshape(this, flatShape(shape)); }
  flatten(startDim = 0, endDim = -1): Tensor { return aten.flatten_using_ints(this, startDim, endDim); }
  unflatten(dim: number, sizes: Shape): Tensor { return aten.unflatten_int(this, dim, sizes); }
  squeeze(dim?: number | readonly number[]): Tensor {
    return dim === undefined ? aten.squeeze(this) : aten.squeeze_dims(this, dimsArg(dim) as number[]);
  }
  unsqueeze(dim: number): Tensor { return aten.unsqueeze(this, dim); }
  permute(...dims: number[] | [Shape]): Tensor { return aten.permute(this, flatShape(dims)); }
  transpose(dim0: number, dim1: number): Tensor { return aten.transpose_int(this, dim0, dim1); }
  /** Transpose of the last two dimensions. */
  get mT(): Tensor { return aten.transpose_int(this, -2, -1); }
  t(): Tensor { return aten.t(this); }
  expand(...shape: number[] | [Shape]): Tensor { return aten.expand(this, flatShape(shape)); }
  expandAs(other: Tensor): Tensor { return aten.expand_as(this, other); }
  contiguous(): Tensor { return aten.contiguous(this); }
  narrow(dim: number, start: number, length: number): Tensor { return aten.narrow(this, dim, start, length); }
  select(dim: number, index: number): Tensor { return aten.select_int(this, dim, index); }
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor { return aten.slice_Tensor(this, dim, start ?? null, end ?? null, step); }
  chunk(chunks: number, dim = 0): Tensor[] { return aten.chunk(this, chunks, dim); }
  split(sizes: number | readonly number[], dim = 0): Tensor[] {
    return typeof sizes === 'number' ? aten.split_Tensor(this, sizes, dim) : aten.split_with_sizes(this, sizes, dim);
  }
  unbind(dim = 0): Tensor[] { return aten.unbind_int(this, dim); }
  repeat(...sizes: number[] | [Shape]): Tensor { return aten.repeat(this, flatShape(sizes)); }
  flip(dims: number | readonly number[]): Tensor { return aten.flip(this, dimsArg(dims) as number[]); }
  roll(shifts: number | readonly number[], dims: number | readonly number[] = []): Tensor {
    return aten.roll(this, typeof shifts === 'number' ? [shifts] : shifts, typeof dims === 'number' ? [dims] : dims);
  }
  unfold(dim: number, size: number, step: number): Tensor { return aten.unfold(this, dim, size, step); }

  // ---- indexing ----------------------------------------------------------

  /** NumPy-style indexing: numbers, slice(...), null (new axis), '...', index tensors. */
  index(...spec: IndexSpec[]): Tensor { return indexTensor(this, spec); }
  indexSelect(dim: number, index: Tensor): Tensor { return aten.index_select(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return aten.gather(this, dim, index, false); }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return src instanceof Tensor ? aten.scatter_src(this, dim, index, src) : aten.scatter_value(this, dim, index, src);
  }
  scatter_(dim: number, index: Tensor, src: Tensor | number): this {
    if (src instanceof Tensor) aten.scatter__src(this, dim, index, src);
    else aten.scatter__value(this, dim, index, src);
    return this;
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return aten.scatter_add(this, dim, index, src); }
  indexPut(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): Tensor { return aten.index_put(this, indices, values, accumulate); }
  indexPut_(indices: readonly (Tensor | null)[], values: Tensor, accumulate = false): this { aten.index_put_(this, indices, values, accumulate); return this; }
  maskedFill(mask: Tensor, value: Scalar | Tensor): Tensor {
    return value instanceof Tensor ? aten.masked_fill_Tensor(this, mask, value) : aten.masked_fill_Scalar(this, mask, value);
  }
  maskedFill_(mask: Tensor, value: Scalar): this { aten.masked_fill__Scalar(this, mask, value); return this; }
  maskedSelect(mask: Tensor): Tensor { return aten.masked_select(this, mask); }

  // ---- elementwise -------------------------------------------------------

  add(x: Tensor | Scalar, alpha?: Scalar): Tensor {
    const o = other(x, 'add');
    return o instanceof Tensor ? aten.add_Tensor(this, o, alpha) : aten.add_Scalar(this, o, alpha);
  }
  sub(x: Tensor | Scalar, alpha?: Scalar): Tensor {
    const o = other(x, 'sub');
    return o instanceof Tensor ? aten.sub_Tensor(this, o, alpha) : aten.sub_Scalar(this, o, alpha);
  }
  mul(x: Tensor | Scalar): Tensor {
    const o = other(x, 'mul');
    return o instanceof Tensor ? aten.mul_Tensor(this, o) : aten.mul_Scalar(this, o);
  }
  div(x: Tensor | Scalar, roundingMode?: 'trunc' | 'floor'): Tensor {
    const o = other(x, 'div');
    if (roundingMode !== undefined) return o instanceof Tensor ? aten.div_Tensor_mode(this, o, roundingMode) : aten.div_Scalar_mode(this, o, roundingMode);
    return o instanceof Tensor ? aten.div_Tensor(this, o) : aten.div_Scalar(this, o);
  }
  pow(x: Tensor | Scalar): Tensor {
    const o = other(x, 'pow');
    return o instanceof Tensor ? aten.pow_Tensor_Tensor(this, o) : aten.pow_Tensor_Scalar(this, o);
  }
  remainder(x: Tensor | Scalar): Tensor {
    const o = other(x, 'remainder');
    return o instanceof Tensor ? aten.remainder_Tensor(this, o) : aten.remainder_Scalar(this, o);
  }
  neg(): Tensor { return aten.neg(this); }
  abs(): Tensor { return aten.abs(this); }
  exp(): Tensor { return aten.exp(this); }
  log(): Tensor { return aten.log(this); }
  log1p(): Tensor { return aten.log1p(this); }
  expm1(): Tensor { return aten.expm1(this); }
  sqrt(): Tensor { return aten.sqrt(this); }
  rsqrt(): Tensor { return aten.rsqrt(this); }
  square(): Tensor { return aten.square(this); }
  reciprocal(): Tensor { return aten.reciprocal(this); }
  sin(): Tensor { return aten.sin(this); }
  cos(): Tensor { return aten.cos(this); }
  tanh(): Tensor { return aten.tanh(this); }
  sigmoid(): Tensor { return aten.sigmoid(this); }
  erf(): Tensor { return aten.erf(this); }
  relu(): Tensor { return aten.relu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return aten.gelu(this, approximate); }
  floor(): Tensor { return aten.floor(this); }
  ceil(): Tensor { return aten.ceil(this); }
  round(): Tensor { return aten.round(this); }
  sign(): Tensor { return aten.sign(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return aten.clamp(this, min ?? null, max ?? null); }
  clampMin(min: number): Tensor { return aten.clamp_min(this, min); }
  clampMax(max: number): Tensor { return aten.clamp_max(this, max); }
  maximum(x: Tensor): Tensor { return aten.maximum(this, x); }
  minimum(x: Tensor): Tensor { return aten.minimum(this, x); }
  lerp(end: Tensor, weight: Tensor | Scalar): Tensor {
    return weight instanceof Tensor ? aten.lerp_Tensor(this, end, weight) : aten.lerp_Scalar(this, end, weight);
  }
  addcmul(a: Tensor, b: Tensor, value: Scalar = 1): Tensor { return aten.addcmul(this, a, b, value); }
  addcdiv(a: Tensor, b: Tensor, value: Scalar = 1): Tensor { return aten.addcdiv(this, a, b, value); }
  eq(x: Tensor | Scalar): Tensor { const o = other(x, 'eq'); return o instanceof Tensor ? aten.eq_Tensor(this, o) : aten.eq_Scalar(this, o); }
  ne(x: Tensor | Scalar): Tensor { const o = other(x, 'ne'); return o instanceof Tensor ? aten.ne_Tensor(this, o) : aten.ne_Scalar(this, o); }
  lt(x: Tensor | Scalar): Tensor { const o = other(x, 'lt'); return o instanceof Tensor ? aten.lt_Tensor(this, o) : aten.lt_Scalar(this, o); }
  le(x: Tensor | Scalar): Tensor { const o = other(x, 'le'); return o instanceof Tensor ? aten.le_Tensor(this, o) : aten.le_Scalar(this, o); }
  gt(x: Tensor | Scalar): Tensor { const o = other(x, 'gt'); return o instanceof Tensor ? aten.gt_Tensor(this, o) : aten.gt_Scalar(this, o); }
  ge(x: Tensor | Scalar): Tensor { const o = other(x, 'ge'); return o instanceof Tensor ? aten.ge_Tensor(this, o) : aten.ge_Scalar(this, o); }
  logicalNot(): Tensor { return aten.logical_not(this); }
  logicalAnd(x: Tensor): Tensor { return aten.logical_and(this, x); }
  logicalOr(x: Tensor): Tensor { return aten.logical_or(this, x); }
  isnan(): Tensor { return aten.isnan(this); }
  isfinite(): Tensor { return aten.isfinite(this); }

  // ---- in place ----------------------------------------------------------

  add_(x: Tensor | Scalar, alpha?: Scalar): this {
    const o = other(x, 'add_');
    if (o instanceof Tensor) aten.add__Tensor(this, o, alpha);
    else aten.add__Scalar(this, o, alpha);
    return this;
  }
  sub_(x: Tensor | Scalar, alpha?: Scalar): this {
    const o = other(x, 'sub_');
    if (o instanceof Tensor) aten.sub__Tensor(this, o, alpha);
    else aten.sub__Scalar(this, o, alpha);
    return this;
  }
  mul_(x: Tensor | Scalar): this {
    const o = other(x, 'mul_');
    if (o instanceof Tensor) aten.mul__Tensor(this, o);
    else aten.mul__Scalar(this, o);
    return this;
  }
  div_(x: Tensor | Scalar): this {
    const o = other(x, 'div_');
    if (o instanceof Tensor) aten.div__Tensor(this, o);
    else aten.div__Scalar(this, o);
    return this;
  }
  pow_(x: Scalar): this { aten.pow__Scalar(this, x); return this; }
  neg_(): this { aten.neg_(this); return this; }
  exp_(): this { aten.exp_(this); return this; }
  sqrt_(): this { aten.sqrt_(this); return this; }
  clamp_(min?: number | null, max?: number | null): this { aten.clamp_(this, min ?? null, max ?? null); return this; }
  zero_(): this { aten.zero_(this); return this; }
  fill_(value: Scalar): this { aten.fill__Scalar(this, value); return this; }
  copy_(src: Tensor, nonBlocking = false): this { aten.copy_(this, src, nonBlocking); return this; }
  lerp_(end: Tensor, weight: Tensor | Scalar): this {
    if (weight instanceof Tensor) aten.lerp__Tensor(this, end, weight);
    else aten.lerp__Scalar(this, end, weight);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value: Scalar = 1): this { aten.addcmul_(this, a, b, value); return this; }
  addcdiv_(a: Tensor, b: Tensor, value: Scalar = 1): this { aten.addcdiv_(this, a, b, value); return this; }
  normal_(mean = 0, std = 1): this { aten.normal_(this, mean, std); return this; }
  uniform_(from = 0, to = 1): this { aten.uniform_(this, from, to); return this; }

  // ---- reductions --------------------------------------------------------

  sum(dim?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    return dim === undefined ? aten.sum(this, dtype) : aten.sum_dim_IntList(this, dimsArg(dim), keepdim, dtype);
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return dim === undefined ? aten.mean(this) : aten.mean_dim(this, dimsArg(dim), keepdim);
  }
  prod(dim?: number, keepdim = false): Tensor { return dim === undefined ? aten.prod(this) : aten.prod_dim_int(this, dim, keepdim); }
  /** Maximum of all elements. For values and indices along a dimension use maxDim. */
  max(): Tensor { return aten.max(this); }
  min(): Tensor { return aten.min(this); }
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.max_dim(this, dim, keepdim);
    return { values, indices };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.min_dim(this, dim, keepdim);
    return { values, indices };
  }
  amax(dim: number | readonly number[] = [], keepdim = false): Tensor { return aten.amax(this, dimsArg(dim) as number[], keepdim); }
  amin(dim: number | readonly number[] = [], keepdim = false): Tensor { return aten.amin(this, dimsArg(dim) as number[], keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return aten.argmax(this, dim ?? null, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return aten.argmin(this, dim ?? null, keepdim); }
  /** Standard deviation with Bessel's correction by default (correction = 1), as torch.std. */
  std(dim?: number | readonly number[], keepdim = false, correction = 1): Tensor { return aten.std_correction(this, dimsArg(dim), correction, keepdim); }
  var(dim?: number | readonly number[], keepdim = false, correction = 1): Tensor { return aten.var_correction(this, dimsArg(dim), correction, keepdim); }
  norm(p: number = 2, dim?: number | readonly number[], keepdim = false): Tensor {
    return dim === undefined ? aten.norm_Scalar(this, p) : aten.norm_ScalarOpt_dim(this, p, dimsArg(dim) as number[], keepdim);
  }
  all(dim?: number, keepdim = false): Tensor { return dim === undefined ? aten.all(this) : aten.all_dim(this, dim, keepdim); }
  any(dim?: number, keepdim = false): Tensor { return dim === undefined ? aten.any(this) : aten.any_dim(this, dim, keepdim); }
  logsumexp(dim: number | readonly number[], keepdim = false): Tensor { return aten.logsumexp(this, dimsArg(dim) as number[], keepdim); }
  cumsum(dim: number, dtype?: DType): Tensor { return aten.cumsum(this, dim, dtype); }
  softmax(dim: number, dtype?: DType): Tensor { return aten.softmax_int(this, dim, dtype); }
  logSoftmax(dim: number, dtype?: DType): Tensor { return aten.log_softmax_int(this, dim, dtype); }

  // ---- linear algebra and ordering ---------------------------------------

  matmul(x: Tensor): Tensor { return aten.matmul(this, x); }
  mm(x: Tensor): Tensor { return aten.mm(this, x); }
  bmm(x: Tensor): Tensor { return aten.bmm(this, x); }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.sort(this, dim, descending);
    return { values, indices };
  }
  argsort(dim = -1, descending = false): Tensor { return aten.argsort(this, dim, descending); }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.topk(this, k, dim, largest, sorted);
    return { values, indices };
  }
}

function flatShape(args: number[] | [Shape]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return (args[0] as number[]).slice();
  return args as number[];
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

