// Creating tensors: constant fills, ranges, random draws, and JS data.
// JS has one number type, so where PyTorch would infer int64 from Python ints
// these functions default to float32 unless noted (arange and randint keep
// PyTorch's integer rules).
import { native } from '../native';
import * as aten from './ops.generated';
import { assertDevice, type Device } from './device';
import { assertDType, describe, dtypeCode, dtypeOfTypedArray, type AnyTypedArray, type DType } from './dtype';
import { Tensor, type NestedArray, type Shape } from './tensor';
import type { Generator } from '../runtime/generator';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

function checkShape(shape: Shape, what = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`Expected an array of sizes for "${what}" but received ${describe(shape)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new TypeError(`Expected non-negative integer sizes for "${what}" but received [${shape.join(', ')}]`);
  }
  return shape as number[];
}

function opts(o: CreateOptions | undefined, defaultDType: DType | null = 'float32'): { dtype: DType | null; device: string | null } {
  const dtype = o?.dtype !== undefined ? assertDType(o.dtype, '"dtype"') : defaultDType;
  const device = o?.device !== undefined ? assertDevice(o.device) : null;
  return { dtype, device };
}

function finish(t: Tensor, o: CreateOptions | undefined): Tensor {
  if (o?.requiresGrad) t.requiresGrad_(true);
  return t;
}

export function zeros(shape: Shape, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o);
  return finish(aten.zeros(checkShape(shape), dtype, null, device), o);
}

export function ones(shape: Shape, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o);
  return finish(aten.ones(checkShape(shape), dtype, null, device), o);
}

/** Uninitialised memory. */
export function empty(shape: Shape, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o);
  return finish(aten.empty_memory_format(checkShape(shape), dtype, null, device), o);
}

/** A tensor filled with value (float32 by default, bool for a boolean value). */
export function full(shape: Shape, value: number | boolean, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, typeof value === 'boolean' ? 'bool' : 'float32');
  return finish(aten.full(checkShape(shape), value, dtype, null, device), o);
}

export function eye(n: number, m: number = n, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o);
  return finish(aten.eye_m(n, m, dtype, null, device), o);
}

/**
 * Values from start to end (exclusive) by step, like torch.arange: int64 when
 * start, end and step are all integers, float32 otherwise.
 */
export function arange(startOrEnd: number, end?: number, step = 1, o?: CreateOptions): Tensor {
  const start = end === undefined ? 0 : startOrEnd;
  const stop = end === undefined ? startOrEnd : end;
  if (step === 0) throw new RangeError('arange() needs a non-zero step');
  const integral = Number.isInteger(start) && Number.isInteger(stop) && Number.isInteger(step);
  const { dtype, device } = opts(o, integral ? 'int64' : 'float32');
  return finish(aten.arange_start_step(start, stop, step, dtype, null, device), o);
}

export function linspace(start: number, end: number, steps: number, o?: CreateOptions): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new TypeError(`Expected a non-negative integer for "steps" but received ${steps}`);
  const { dtype, device } = opts(o);
  return finish(aten.linspace(start, end, steps, dtype, null, device), o);
}

/** Uniform on [0, 1). */
export function rand(shape: Shape, o?: RandomOptions): Tensor {
  const { dtype, device } = opts(o);
  const s = checkShape(shape);
  return finish(o?.generator ? aten.rand_generator(s, o.generator, dtype, null, device) : aten.rand(s, dtype, null, device), o);
}

/** Standard normal. */
export function randn(shape: Shape, o?: RandomOptions): Tensor {
  const { dtype, device } = opts(o);
  const s = checkShape(shape);
  return finish(o?.generator ? aten.randn_generator(s, o.generator, dtype, null, device) : aten.randn(s, dtype, null, device), o);
}

/** Integers uniform on [low, high), int64 by default. */
export function randint(low: number, high: number, shape: Shape, o?: RandomOptions): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new RangeError(`randint() needs integers low < high but received low=${low}, high=${high}`);
  }
  const { dtype, device } = opts(o, 'int64');
  const s = checkShape(shape);
  return o?.generator
    ? aten.randint_low_generator(low, high, s, o.generator, dtype, null, device)
    : aten.randint_low(low, high, s, dtype, null, device);
}

/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, o?: RandomOptions): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`Expected a non-negative integer for "n" but received ${n}`);
  const { dtype, device } = opts(o, 'int64');
  return o?.generator ? aten.randperm_generator(n, o.generator, dtype, null, device) : aten.randperm(n, dtype, null, device);
}

export function zerosLike(t: Tensor, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.zeros_like(t, dtype, null, device), o);
}

export function onesLike(t: Tensor, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.ones_like(t, dtype, null, device), o);
}

export function fullLike(t: Tensor, value: number | boolean, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.full_like(t, value, dtype, null, device), o);
}

export function emptyLike(t: Tensor, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.empty_like(t, dtype, null, device), o);
}

export function randLike(t: Tensor, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.rand_like(t, dtype, null, device), o);
}

export function randnLike(t: Tensor, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, null);
  return finish(aten.randn_like(t, dtype, null, device), o);
}

/**
 * A tensor holding a copy of `data` with the given shape. The dtype defaults
 * to the array's own (a Uint16Array is read as float16 bits unless
 * dtype 'bfloat16' is given).
 */
export function fromTypedArray(data: AnyTypedArray | Uint8ClampedArray, shape: Shape, o?: CreateOptions): Tensor {
  if (!ArrayBuffer.isView(data)) throw new TypeError(`Expected a TypedArray for "data" but received ${describe(data)}`);
  const natural = dtypeOfTypedArray(data);
  const dtype = o?.dtype !== undefined ? assertDType(o.dtype, '"dtype"') : natural;
  const s = checkShape(shape);
  const count = s.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new TypeError(`Expected ${count} elements for shape [${s.join(', ')}] but received ${data.length}`);
  }
  // Bytes are taken as they are only for the array's own dtype, or for
  // bfloat16 bits in a Uint16Array; any other dtype converts the values.
  const raw = dtype === natural || (natural === 'float16' && dtype === 'bfloat16');
  if (!raw) {
    const base = Tensor._wrap(native.fromBuffer(data, s, dtypeCode(natural)));
    const cast = base.to({ dtype });
    base.dispose();
    return finish(toDevice(cast, o?.device), o);
  }
  return finish(toDevice(Tensor._wrap(native.fromBuffer(data, s, dtypeCode(dtype))), o?.device), o);
}

/**
 * Moves a fresh host tensor to `device`, consuming it. To CUDA it goes
 * through pinned memory with a non-blocking copy: a copy from pageable memory
 * waits for the device's whole queue (a host sync), which JS-built tensors
 * inside a training step (crop grids, masks, indices) would otherwise cause
 * every step. The pinned block is not reused before the copy has run (the
 * caching host allocator records an event for it).
 */
function toDevice(host: Tensor, device: Device | undefined): Tensor {
  if (device === undefined || assertDevice(device) === 'cpu') return host;
  let moved: Tensor;
  if (device.startsWith('cuda')) {
    const pinned = aten.pin_memory(host);
    moved = pinned.to({ device, nonBlocking: true });
    pinned.dispose();
  } else {
    moved = host.to({ device });
  }
  host.dispose();
  return moved;
}

function inferShape(data: NestedArray, shape: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new TypeError(`Ragged nested array: expected length ${shape[depth]} at depth ${depth} but found ${data.length}`);
    for (const d of data) inferShape(d, shape, depth + 1);
  } else if (typeof data !== 'number' && typeof data !== 'boolean') {
    throw new TypeError(`Expected numbers or booleans in the nested array but found ${describe(data)}`);
  } else if (shape.length !== depth) {
    throw new TypeError(`Ragged nested array: found a number at depth ${depth} where arrays of depth ${shape.length} were expected`);
  }
}

// Inclusive bounds of the integer dtypes (int64's upper bound, 2^63, is
// exclusive). Like torch.tensor and et.full, values outside are refused
// rather than wrapped; bool takes any number (non-zero is true) as PyTorch does.
const INT_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], int16: [-32768, 32767], int32: [-2147483648, 2147483647], int64: [-(2 ** 63), 2 ** 63],
};

function checkedInt(v: number | boolean, i: number, dtype: DType): bigint {
  const n = Number(v);
  const [lo, hi] = INT_RANGES[dtype] as readonly [number, number];
  if (!(n >= lo && (dtype === 'int64' ? n < hi : n <= hi))) {
    throw new RangeError(`Expected values from ${lo} to ${dtype === 'int64' ? '2^63 - 1' : hi} for a tensor of dtype ${dtype} but element ${i} is ${n}`);
  }
  return BigInt(Math.trunc(n));
}

/** A tensor from nested JS arrays (float32 for numbers, bool for booleans) or a TypedArray (1-D). */
export function tensor(data: NestedArray | AnyTypedArray, o?: CreateOptions): Tensor {
  if (ArrayBuffer.isView(data)) return fromTypedArray(data as AnyTypedArray, [(data as AnyTypedArray).length], o);
  const shape: number[] = [];
  inferShape(data, shape, 0);
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
  const isBool = flat.length > 0 && typeof flat[0] === 'boolean';
  const dtype = o?.dtype !== undefined ? assertDType(o.dtype, '"dtype"') : isBool ? 'bool' : 'float32';
  let base: AnyTypedArray;
  let baseDType: DType;
  if (isBool || dtype === 'bool') {
    base = Uint8Array.from(flat, (v) => (v ? 1 : 0));
    baseDType = 'bool';
  } else if (dtype === 'int64' || dtype === 'int32' || dtype === 'int16' || dtype === 'int8' || dtype === 'uint8') {
    base = BigInt64Array.from(flat, (v, i) => checkedInt(v, i, dtype));
    baseDType = 'int64';
  } else {
    base = Float64Array.from(flat, Number);
    baseDType = 'float64';
  }
  const raw = Tensor._wrap(native.fromBuffer(base, shape, dtypeCode(baseDType)));
  if (baseDType === dtype) return finish(toDevice(raw, o?.device), o);
  const cast = raw.to({ dtype });
  raw.dispose();
  return finish(toDevice(cast, o?.device), o);
}

/** A 0-dimensional tensor. */
export function scalarTensor(value: number | boolean, o?: CreateOptions): Tensor {
  const { dtype, device } = opts(o, typeof value === 'boolean' ? 'bool' : 'float32');
  return finish(aten.scalar_tensor(value, dtype, null, device), o);
}
