// IDX files, the format of MNIST and Fashion-MNIST: two zero bytes, a dtype
// code, the number of dimensions, then each dimension as a big-endian uint32
// and the values in row-major order, big-endian. Files may be gzipped (as the
// datasets are distributed); that is detected from the gzip magic bytes.
import * as fs from 'node:fs';
import { gunzipSync } from 'node:zlib';

export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDType;
  shape: number[];
  /** Row-major values in native byte order (a copy, not a view of the file). */
  data: IdxTypedArray;
}

export interface IdxImages {
  /** count x height x width uint8, row-major (one channel). */
  images: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: 1;
}

/** A malformed IDX file; the message names the file and what is wrong. */
export class IdxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdxError';
  }
}

interface TypeInfo {
  dtype: IdxDType;
  size: number;
  name: string;
}

const TYPES = new Map<number, TypeInfo>([
  [0x08, { dtype: 'uint8', size: 1, name: 'unsigned byte' }],
  [0x09, { dtype: 'int8', size: 1, name: 'signed byte' }],
  [0x0b, { dtype: 'int16', size: 2, name: 'short' }],
  [0x0c, { dtype: 'int32', size: 4, name: 'int' }],
  [0x0d, { dtype: 'float32', size: 4, name: 'float' }],
  [0x0e, { dtype: 'float64', size: 8, name: 'double' }],
]);

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function decode(bytes: Uint8Array, offset: number, count: number, info: TypeInfo): IdxTypedArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * info.size);
  switch (info.dtype) {
    // Buffer#slice would return a view (into Node's shared pool for small
    // files), so copy through set().
    case 'uint8': {
      const out = new Uint8Array(count);
      out.set(bytes.subarray(offset, offset + count));
      return out;
    }
    case 'int8': {
      const out = new Int8Array(count);
      out.set(new Int8Array(bytes.buffer, bytes.byteOffset + offset, count));
      return out;
    }
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, false);
      return out;
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, false);
      return out;
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, false);
      return out;
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, false);
      return out;
    }
  }
}

/**
 * Parses the bytes of an IDX file (gzipped or not). `name` is used in error
 * messages. Rejects bad magic bytes, unknown dtypes, missing dimensions and any
 * size mismatch (truncated data or trailing bytes) with an IdxError.
 */
export function parseIdx(input: Uint8Array, name = '<buffer>'): IdxArray {
  let bytes = input;
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new IdxError(`${name}: Expected a complete gzip stream but received one that does not decompress (${(e as Error).message})`, { cause: e });
    }
  }
  if (bytes.length < 4) {
    throw new IdxError(`${name}: Expected at least the 4 magic bytes of an IDX file but received ${bytes.length} byte(s)`);
  }
  const [z0, z1, code, ndim] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const info = TYPES.get(code);
  if (z0 !== 0 || z1 !== 0 || info === undefined) {
    throw new IdxError(
      `${name}: Expected IDX magic bytes 0x00 0x00 <dtype: 0x08 ubyte, 0x09 byte, 0x0b short, 0x0c int, 0x0d float, 0x0e double> <ndim> ` +
        `but received ${[z0, z1, code, ndim].map(hex).join(' ')} (not an IDX file)`,
    );
  }
  if (ndim === 0) throw new IdxError(`${name}: Expected at least 1 dimension but received 0`);
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new IdxError(`${name}: Expected a ${headerBytes}-byte header for ${ndim} dimensions but received only ${bytes.length} bytes (truncated)`);
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(header.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count * info.size;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? `truncated: ${expected - bytes.length} bytes missing` : `${bytes.length - expected} trailing bytes`;
    throw new IdxError(
      `${name}: Expected ${expected} bytes (${headerBytes}-byte header + ${shape.join(' x ')} ${info.name} values) but received ${bytes.length} (${what})`,
    );
  }
  return { dtype: info.dtype, shape, data: decode(bytes, headerBytes, count, info) };
}

/** Reads an IDX file, plain or gzipped. */
export function readIdx(file: string): IdxArray {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new IdxError(`Cannot read IDX file ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseIdx(bytes, file);
}

function checkImages(a: IdxArray, name: string): IdxImages {
  if (a.dtype !== 'uint8' || a.shape.length !== 3) {
    throw new IdxError(`${name}: Expected an N x H x W array of unsigned bytes (an IDX3 ubyte image file) but received ${a.shape.join(' x ')} ${a.dtype}`);
  }
  const [count, height, width] = a.shape as [number, number, number];
  if (height === 0 || width === 0) throw new IdxError(`${name}: Expected images of at least 1 x 1 pixels but received ${height} x ${width}`);
  return { images: a.data as Uint8Array, count, height, width, channels: 1 };
}

/** Images from an IDX3 ubyte file (N x H x W), e.g. train-images-idx3-ubyte.gz. */
export function loadIdxImages(file: string): IdxImages {
  return checkImages(readIdx(file), file);
}

/** Image bytes already in memory (gzipped or not). */
export function parseIdxImages(bytes: Uint8Array, name = '<buffer>'): IdxImages {
  return checkImages(parseIdx(bytes, name), name);
}

/** Labels from an IDX1 ubyte file (N), e.g. train-labels-idx1-ubyte.gz. */
export function loadIdxLabels(file: string): Uint8Array {
  const a = readIdx(file);
  if (a.dtype !== 'uint8' || a.shape.length !== 1) {
    throw new IdxError(`${file}: Expected a 1-dimensional array of unsigned bytes (an IDX1 ubyte label file) but received ${a.shape.join(' x ')} ${a.dtype}`);
  }
  return a.data as Uint8Array;
}
