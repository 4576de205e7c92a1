// The safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, __metadata__: {str: str}}, then
// the raw little-endian bytes. Reading validates everything before touching
// data; writing goes to a temporary file renamed into place, so a crash never
// leaves a half-written file under the real name.
import * as fs from 'node:fs';
import { fromBytes, toBytes } from '../tensor/bytes';
import { itemSize, type DType } from '../tensor/dtype';
import { Tensor } from '../tensor/tensor';
import { noGrad } from '../autograd';
import { writeFileAtomic } from './fs';

const TO_FILE: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_FILE = new Map<string, DType>(Object.entries(TO_FILE).map(([k, v]) => [v, k as DType]));
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsContent {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Serialises tensors (moved to CPU) and string metadata into one buffer. */
export function serializeSafetensors(tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors metadata values must be strings, but "${k}" is ${typeof v}`);
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new TypeError('"__metadata__" cannot be used as a tensor name');
    if (!(t instanceof Tensor)) throw new TypeError(`Expected a Tensor for "${name}"`);
    const bytes = Buffer.from(toBytes(t).buffer);
    header[name] = { dtype: TO_FILE[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  return Buffer.concat([prefix, headerBytes, ...chunks]);
}

/** Writes atomically: temp file in the same folder, fsync, rename. */
export function saveSafetensors(file: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): void {
  const data = serializeSafetensors(tensors, metadata);
  writeFileAtomic(file, data);
}

function fail(source: string, message: string): never {
  throw new SafetensorsError(`Invalid safetensors file ${source}: ${message}`);
}

/** Parses a safetensors buffer into CPU tensors, validating the header first. */
export function parseSafetensors(buffer: Uint8Array, source = '(buffer)'): SafetensorsContent {
  if (buffer.length < 8) fail(source, `it has ${buffer.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER, buffer.length - 8))) {
    fail(source, `header length ${headerLength} exceeds the file (${buffer.length} bytes) — truncated or not safetensors`);
  }
  const hl = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(buffer.buffer, buffer.byteOffset + 8, hl).toString('utf8'));
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(source, 'header is not a JSON object');
  const dataStart = 8 + hl;
  const dataLength = buffer.length - dataStart;
  const metadata: Record<string, string> = {};
  const specs: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) fail(source, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(source, `metadata "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(source, `entry "${name}" is not an object`);
    const dtype = FROM_FILE.get(String(e.dtype));
    if (dtype === undefined) fail(source, `tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(source, `tensor "${name}" has an invalid shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1]) {
      fail(source, `tensor "${name}" has invalid data_offsets`);
    }
    const [begin, end] = offs as [number, number];
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * itemSize(dtype);
    if (end - begin !== expected) fail(source, `tensor "${name}" has ${end - begin} bytes but shape [${shape.join(', ')}] ${dtype} needs ${expected}`);
    if (end > dataLength) fail(source, `tensor "${name}" ends at byte ${end} but the data section has only ${dataLength} bytes (truncated file?)`);
    specs.push({ name, dtype, shape, begin, end });
  }
  // The format requires the tensors to tile the data section without gaps or overlap.
  specs.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of specs) {
    if (s.begin !== cursor) fail(source, `tensor "${s.name}" starts at ${s.begin}, expected ${cursor} (overlapping or gapped data)`);
    cursor = s.end;
  }
  if (cursor !== dataLength) fail(source, `${dataLength - cursor} trailing bytes after the last tensor`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs) {
      const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset + dataStart + s.begin, s.end - s.begin);
      tensors.set(s.name, fromBytes(bytes, s.shape, s.dtype));
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  // Keep the file's key order for callers iterating the map.
  const ordered = new Map<string, Tensor>();
  for (const name of Object.keys(header as object)) {
    const t = tensors.get(name);
    if (t !== undefined) ordered.set(name, t);
  }
  return { tensors: ordered, metadata };
}

export function loadSafetensors(file: string, options: { device?: string } = {}): SafetensorsContent {
  let buffer: Buffer;
  try {
    buffer = fs.readFileSync(file);
  } catch (e) {
    throw new SafetensorsError(`Cannot read safetensors file ${file}: ${(e as Error).message}`);
  }
  const content = parseSafetensors(buffer, file);
  if (options.device !== undefined && options.device !== 'cpu') {
    noGrad(() => {
      for (const [k, t] of content.tensors) {
        content.tensors.set(k, t.to({ device: options.device as string }));
        t.dispose();
      }
    });
  }
  return content;
}
