// Element types, their libtorch ScalarType codes and the TypedArrays that
// hold their bytes in JS.

export type FloatDType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export type IntDType = 'int64' | 'int32' | 'int16' | 'int8' | 'uint8';
export type DType = FloatDType | IntDType | 'bool';

/** c10::ScalarType enum values. */
const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const BY_CODE = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

export const DTYPES: readonly DType[] = Object.keys(CODES) as DType[];

export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array; // raw IEEE half bits
  bfloat16: Uint16Array; // raw bfloat16 bits
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export type AnyTypedArray = TypedArrayOf[DType];

type TypedArrayCtor = { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): AnyTypedArray; BYTES_PER_ELEMENT: number };

const ARRAY_TYPES: Record<DType, TypedArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(CODES, value);
}

export function assertDType(value: unknown, what: string): DType {
  if (!isDType(value)) {
    throw new TypeError(`Expected a dtype (${DTYPES.join(', ')}) for ${what} but received ${describe(value)}`);
  }
  return value;
}

export function dtypeCode(dtype: DType): number {
  return CODES[dtype];
}

export function dtypeFromCode(code: number): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) throw new TypeError(`The tensor has a dtype (ScalarType ${code}) this library does not support`);
  return d;
}

export function itemSize(dtype: DType): number {
  return ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
}

export function isFloating(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

export function typedArrayFor<D extends DType>(dtype: D, buffer: ArrayBuffer): TypedArrayOf[D] {
  const Ctor = ARRAY_TYPES[dtype];
  return new Ctor(buffer, 0, buffer.byteLength / Ctor.BYTES_PER_ELEMENT) as TypedArrayOf[D];
}

/** The dtype a TypedArray holds by default (Uint16Array is ambiguous: float16). */
export function dtypeOfTypedArray(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  if (data instanceof Uint16Array) return 'float16';
  throw new TypeError(`Expected a Float32Array, Float64Array, BigInt64Array, Int32Array, Int16Array, Int8Array, Uint8Array or Uint16Array but received ${describe(data)}`);
}

/** A short description of any JS value, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string "${value}"`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  return typeof value;
}
