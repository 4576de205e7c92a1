// Loading PyTorch checkpoints (torch.save's zip format, PyTorch >= 1.6)
// without running any Python: the zip is read by ./zip, data.pkl by the safe
// unpickler in ./pickle, and tensors are rebuilt from the raw storage records.
//
//   const ckpt = loadPth('checkpoint.pth');            // { object, tensors, dispose() }
//   const args = (ckpt.object as PickleDict).get('args') as PickleObject;
//   args.get('lr');                                     // argparse.Namespace attributes
//   const sd = stateDictFromPth('checkpoint.pth');      // Map<'module.base_encoder.cls_token', Tensor>
//
// Archive layout: <name>/data.pkl (the object; tensors appear as
// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
// with persistent ids ('storage', torch.FloatStorage, key, location, numel)),
// <name>/data/<key> (each storage's raw bytes), <name>/byteorder ('little' or
// 'big'; big-endian storages are byte-swapped), <name>/version and
// <name>/.format_version.
//
// What comes back:
// - every tensor is a contiguous CPU tensor that owns its memory (moved to
//   `device` when given), whatever location it was saved from; tensors that
//   shared a storage in Python load as independent copies with the right
//   values (storage sharing itself is not preserved); a tensor covering its
//   whole storage is made straight from the bytes, views go through
//   as_strided + clone; the same Python tensor object appears as the same JS
//   Tensor wherever the pickle refers to it;
// - nn.Parameter becomes a tensor with requiresGrad set; tensor subclasses
//   and Python attributes on tensors load as plain tensors;
// - Python dicts are Maps, tuples frozen arrays, other objects inert
//   PickleObject placeholders (see ./pickle); bare storages saved on their own
//   load as placeholders without data; sparse and nested tensors are
//   placeholders in the default mode and errors under `strict`; storages of
//   dtypes the library lacks (complex, quantized, uint16, float8) are errors.
// - legacy (pre-1.6 / _use_new_zipfile_serialization=False) files and
//   TorchScript archives are rejected with an error saying so.
// Every failure is a PthError naming the file (its `cause` is the ZipError or
// PickleError underneath; only invalid options are TypeErrors); tensors
// created before the failure are disposed. Called inside scope(), the loaded
// tensors belong to that scope like any other. Peak memory is the tensors plus
// one storage's bytes (and, for storages read through views, that storage
// until the load ends).
//
// A hostile file cannot make a load run long or take much memory: the zip
// reader and the unpickler bound their work by their input (see ./zip and
// ./pickle), the loaded tensors may take `maxMaterializedBytes` together (by
// default the storage records' bytes plus 64 MiB, where a stride-0 view of
// six stored numbers could otherwise claim gigabytes), and the walk that
// lists `tensors` visits each shared container once.
import * as fs from 'node:fs';
import { fromBytes } from '../tensor/bytes';
import * as aten from '../tensor/ops.generated';
import { assertDevice, type Device } from '../tensor/device';
import { itemSize, isFloating, type DType } from '../tensor/dtype';
import { Tensor } from '../tensor/tensor';
import { ZipArchive, ZipError } from './zip';
import {
  PickleError, PickleObject, PickleGlobal, unpickle, isPickleTuple,
  type GlobalHandler, type PickleDict, type PickleValue,
} from './pickle';

export class PthError extends Error {
  override name = 'PthError';
}

export interface LoadPthOptions {
  /** Move every tensor to this device (default: CPU, wherever it was saved). */
  device?: Device;
  /** Unknown Python globals throw instead of loading as placeholders (default false). */
  strict?: boolean;
  /** Check the CRC-32 of the storage records (default true; zlib.crc32 runs at several GB/s). data.pkl and the small records are always checked. */
  verifyChecksums?: boolean;
  /** Refuse a data.pkl larger than this (default 1 GiB). */
  maxPickleBytes?: number;
  /**
   * The most bytes the loaded tensors may take together (default: the bytes
   * of the archive's storage records plus 64 MiB). A tensor can be a view that
   * repeats its storage (stride 0) or overlaps other views, so a few bytes on
   * disk could otherwise become gigabytes; legitimate checkpoints materialise
   * each stored byte about once.
   */
  maxMaterializedBytes?: number;
  /** Deflated records may inflate to at most this many times the file's size in total, or 64 MiB where that is more (default 32). */
  maxInflateRatio?: number;
}

export interface PthCheckpoint {
  /** The object that was saved, with tensors in place. */
  readonly object: PickleValue;
  /**
   * Every tensor reachable from `object` by dotted path ('state_dict.module.fc.weight',
   * 'optimizer.state.0.exp_avg'). A tensor referenced from two places has both paths;
   * a container (dict, list, object) that Python shared between two places is listed
   * under the first path only; where two paths spell the same string the first wins.
   */
  readonly tensors: Map<string, Tensor>;
  /** The archive's top-level folder name, its `version` record and byte order. */
  readonly archiveName: string;
  readonly version: string | null;
  readonly byteorder: 'little' | 'big';
  /** Disposes every tensor this load created. */
  dispose(): void;
}

export interface StateDictOptions extends LoadPthOptions {
  /**
   * Dotted path of the state dict inside the checkpoint ('state_dict',
   * 'model.ema'). By default 'state_dict', then 'model', when the top level is
   * a dict that has it, else the whole object; null takes the whole object.
   */
  key?: string | null;
  /** Strip this prefix from keys that start with it (e.g. 'module.'). */
  stripPrefix?: string;
}

const STORAGE_TYPES: Record<string, DType | 'untyped' | null> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
  UntypedStorage: 'untyped',
  ComplexFloatStorage: null, ComplexDoubleStorage: null, QUInt8Storage: null, QInt8Storage: null, QInt32Storage: null, QUInt4x2Storage: null, QUInt2x4Storage: null,
};

const TORCH_DTYPES: Record<string, DType | null> = {
  float32: 'float32', float64: 'float64', float16: 'float16', bfloat16: 'bfloat16', int64: 'int64', int32: 'int32', int16: 'int16', int8: 'int8', uint8: 'uint8', bool: 'bool',
  complex32: null, complex64: null, complex128: null, uint16: null, uint32: null, uint64: null, float8_e4m3fn: null, float8_e5m2: null, qint8: null, quint8: null, qint32: null,
};

/** More dimensions than any real tensor has; it keeps the work per rebuild call small. */
const MAX_DIMS = 64;
const MATERIALIZE_SLACK = 64 * 1024 * 1024;

const LEGACY_MAGIC = Buffer.from([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

/** A storage as the pickle names it; its bytes are read when a tensor needs them. */
class StorageRef extends PickleObject {
  constructor(readonly key: string, readonly dtype: DType | 'untyped', readonly numel: number, readonly location: string, typeName: string) {
    super('torch.storage.TypedStorage', [typeName, key, location, numel]);
  }
  get byteLength(): number {
    return this.numel * (this.dtype === 'untyped' ? 1 : itemSize(this.dtype));
  }
}

function describe(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (v instanceof Tensor) return 'a tensor';
  if (v instanceof PickleGlobal) return `the global ${v.qualifiedName}`;
  if (v instanceof PickleObject) return `a ${v.__class__} placeholder`;
  if (Array.isArray(v)) return `${isPickleTuple(v) ? 'a tuple' : 'a list'} of length ${v.length}`;
  if (v instanceof Map) return `a dict of size ${v.size}`;
  if (typeof v === 'string') return `the str ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  return `${typeof v} ${String(v)}`;
}

function contiguousStrides(size: readonly number[]): number[] {
  const out = new Array<number>(size.length);
  let s = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= size[i] as number;
  }
  return out;
}

class PthLoader {
  readonly created: Tensor[] = [];
  private readonly storages = new Map<string, Tensor>();
  private readonly refs = new Map<string, StorageRef>();
  readonly globals: Map<string, GlobalHandler | null>;
  byteorder: 'little' | 'big' = 'little';
  prefix = '';
  /** Bytes of the tensors created so far, and their cap (set once the archive's storage records are known). */
  private materialized = 0;
  materializeLimit = 0;
  storedBytes = 0;

  constructor(private readonly zip: ZipArchive, private readonly file: string, private readonly options: LoadPthOptions) {
    const g = new Map<string, GlobalHandler | null>();
    for (const name of Object.keys(STORAGE_TYPES)) g.set(`torch.${name}`, null);
    for (const name of Object.keys(TORCH_DTYPES)) g.set(`torch.${name}`, null);
    g.set('torch._utils._rebuild_tensor', (a) => this.rebuild(a, 'torch._utils._rebuild_tensor', 4, null));
    g.set('torch._utils._rebuild_tensor_v2', (a) => this.rebuild(a, 'torch._utils._rebuild_tensor_v2', 6, null));
    g.set('torch._utils._rebuild_tensor_v3', (a) => this.rebuild(a, 'torch._utils._rebuild_tensor_v3', 7, this.dtypeArg(a[6], 'torch._utils._rebuild_tensor_v3')));
    g.set('torch._utils._rebuild_parameter', (a) => this.parameter(a, 'torch._utils._rebuild_parameter'));
    g.set('torch._utils._rebuild_parameter_with_state', (a) => this.parameter(a, 'torch._utils._rebuild_parameter_with_state'));
    g.set('torch._tensor._rebuild_from_type_v2', (a) => this.fromType(a));
    g.set('torch.device', (a) => this.device(a));
    g.set('torch.Size', (a) => Object.freeze(a.length === 0 ? [] : this.intsArg(a[0], 'torch.Size(...)')));
    g.set('torch.nn.parameter.Parameter', null);
    g.set('torch.Tensor', null);
    this.globals = g;
  }

  fail(message: string): never {
    throw new PthError(`Invalid PyTorch checkpoint ${this.file}: ${message}`);
  }

  private dtypeArg(v: PickleValue | undefined, what: string): DType {
    if (v instanceof PickleGlobal && v.module === 'torch' && v.name in TORCH_DTYPES) {
      const d = TORCH_DTYPES[v.name];
      if (d) return d;
      this.fail(`expected a supported dtype for ${what} but received torch.${v.name}`);
    }
    this.fail(`expected a torch dtype for ${what} but received ${describe(v)}`);
  }

  private device(a: readonly PickleValue[]): PickleValue {
    const [type, index] = a;
    if (typeof type !== 'string') this.fail(`expected a str for torch.device(...) but received ${describe(type)}`);
    if (index === undefined || index === null) return type;
    if (typeof index !== 'number' || !Number.isSafeInteger(index)) this.fail(`expected an int index for torch.device(...) but received ${describe(index)}`);
    return `${type}:${index}`;
  }

  /** The persistent id ('storage', storage_type, key, location, numel). */
  persistentLoad(pid: PickleValue): PickleValue {
    if (!isPickleTuple(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      this.fail(`expected a persistent id ('storage', storage_type, key, location, numel) but received ${describe(pid)}${isPickleTuple(pid) && typeof pid[0] === 'string' ? ` starting with "${pid[0]}"` : ''}`);
    }
    const [, type, key, location, numel] = pid;
    if (!(type instanceof PickleGlobal) || type.module !== 'torch' || !(type.name in STORAGE_TYPES)) {
      this.fail(`expected a torch storage type in a persistent id but received ${describe(type)}`);
    }
    const dtype = STORAGE_TYPES[type.name];
    if (dtype === null || dtype === undefined) this.fail(`storage key ${JSON.stringify(key)} has type torch.${type.name}, whose dtype this library does not support`);
    if (typeof key !== 'string' || key === '') this.fail(`expected a non-empty str storage key but received ${describe(key)}`);
    if (typeof location !== 'string') this.fail(`expected a str location for storage "${key}" but received ${describe(location)}`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) this.fail(`expected a non-negative int size for storage "${key}" but received ${describe(numel)}`);
    const seen = this.refs.get(key);
    if (seen !== undefined) return seen;
    const ref = new StorageRef(key, dtype, numel, location, `torch.${type.name}`);
    this.refs.set(key, ref);
    return ref;
  }

  /** The raw bytes of a storage, checked against its declared size, in native (little-endian) order. */
  private storageBytes(ref: StorageRef, dtype: DType): Buffer {
    const name = `${this.prefix}/data/${ref.key}`;
    const entry = this.zip.entry(name);
    if (entry === undefined) this.fail(`expected a record "${name}" for storage key "${ref.key}" but the archive has none`);
    if (entry.size !== ref.byteLength) {
      this.fail(`expected ${ref.byteLength} bytes (${ref.numel} x ${ref.dtype}) in record "${name}" but received ${entry.size}`);
    }
    const bytes = this.zip.read(entry, { verifyCrc: this.options.verifyChecksums !== false });
    const width = itemSize(dtype);
    if (this.byteorder === 'big' && width > 1) {
      if (width === 2) bytes.swap16();
      else if (width === 4) bytes.swap32();
      else bytes.swap64();
    }
    return bytes;
  }

  private intArg(v: PickleValue | undefined, what: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(`expected a non-negative int for ${what} but received ${describe(v)}`);
    return v;
  }

  private intsArg(v: PickleValue | undefined, what: string): number[] {
    if (!Array.isArray(v)) this.fail(`expected a tuple of ints for ${what} but received ${describe(v)}`);
    if (v.length > MAX_DIMS) this.fail(`expected at most ${MAX_DIMS} dimensions for ${what} but received ${v.length}`);
    return (v as readonly PickleValue[]).map((x, i) => this.intArg(x, `${what}[${i}]`));
  }

  /** _rebuild_tensor(_v2, _v3)(storage, storage_offset, size, stride, requires_grad?, backward_hooks?, dtype?). */
  private rebuild(a: readonly PickleValue[], what: string, minArgs: number, dtypeOverride: DType | null): Tensor {
    if (a.length < minArgs) this.fail(`expected at least ${minArgs} arguments for ${what} but received ${a.length}`);
    const ref = a[0];
    if (!(ref instanceof StorageRef)) this.fail(`expected a storage as the first argument of ${what} but received ${describe(ref)}`);
    const dtype = dtypeOverride ?? ref.dtype;
    if (dtype === 'untyped') this.fail(`expected a dtype for the untyped storage "${ref.key}" in ${what}`);
    const offset = this.intArg(a[1], `the storage offset in ${what}`);
    const size = this.intsArg(a[2], `the size in ${what}`);
    const stride = this.intsArg(a[3], `the stride in ${what}`);
    const requiresGrad = a.length > 4 ? a[4] : false;
    if (typeof requiresGrad !== 'boolean') this.fail(`expected a bool requires_grad in ${what} but received ${describe(requiresGrad)}`);
    if (stride.length !== size.length) this.fail(`expected a stride with ${size.length} entries for size [${size.join(', ')}] in ${what} but received [${stride.join(', ')}]`);
    const width = itemSize(dtype);
    if (ref.byteLength % width !== 0) this.fail(`expected storage "${ref.key}" (${ref.byteLength} bytes) to hold whole ${dtype} elements`);
    const storageNumel = ref.byteLength / width;
    let numel = 1;
    let last = offset;
    for (let i = 0; i < size.length; i++) {
      numel *= size[i] as number;
      last += ((size[i] as number) - 1) * (stride[i] as number);
    }
    if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last)) this.fail(`the tensor of size [${size.join(', ')}] in ${what} is too large`);
    const bytes = numel * width;
    if (this.materialized + bytes > this.materializeLimit) {
      this.fail(`the tensor of size [${size.join(', ')}] (stride [${stride.join(', ')}]) in ${what} takes ${bytes} bytes, which would bring the loaded tensors to ${this.materialized + bytes} bytes, more than the ${this.materializeLimit} allowed (maxMaterializedBytes, by default the ${this.storedBytes} bytes of the storage records plus 64 MiB; raise it to load this file)`);
    }
    this.materialized += bytes;
    let t: Tensor;
    if (numel === 0) {
      t = fromBytes(new Uint8Array(0), size, dtype);
    } else {
      if (last + 1 > storageNumel) {
        this.fail(`expected the tensor (offset ${offset}, size [${size.join(', ')}], stride [${stride.join(', ')}]) to fit in storage "${ref.key}" of ${storageNumel} ${dtype} elements but it needs ${last + 1}`);
      }
      const dense = contiguousStrides(size);
      const contiguous = size.every((s, i) => s === 1 || stride[i] === dense[i]);
      if (offset === 0 && numel === storageNumel && contiguous) {
        t = fromBytes(this.storageBytes(ref, dtype), size, dtype);
      } else {
        const storage = this.storageTensor(ref, dtype, storageNumel);
        const view = aten.as_strided(storage, size, stride, offset);
        try {
          t = aten.clone(view, 'contiguous');
        } finally {
          view.dispose();
        }
      }
    }
    if (this.options.device !== undefined && this.options.device !== 'cpu') {
      try {
        const moved = t.to({ device: this.options.device });
        t.dispose();
        t = moved;
      } catch (e) {
        t.dispose();
        throw e;
      }
    }
    this.created.push(t);
    if (requiresGrad) this.setRequiresGrad(t, what);
    return t;
  }

  private setRequiresGrad(t: Tensor, what: string): void {
    if (!isFloating(t.dtype)) this.fail(`expected a floating point tensor for requires_grad=True in ${what} but received ${t.dtype}`);
    t.requiresGrad_(true);
  }

  private storageTensor(ref: StorageRef, dtype: DType, numel: number): Tensor {
    const key = `${ref.key}\u0000${dtype}`;
    let s = this.storages.get(key);
    if (s === undefined) {
      s = fromBytes(this.storageBytes(ref, dtype), [numel], dtype);
      this.storages.set(key, s);
    }
    return s;
  }

  /** _rebuild_parameter(data, requires_grad, backward_hooks[, state]). */
  private parameter(a: readonly PickleValue[], what: string): Tensor {
    const [data, requiresGrad] = a;
    if (!(data instanceof Tensor)) this.fail(`expected a tensor as the data of ${what} but received ${describe(data)}`);
    if (typeof requiresGrad !== 'boolean') this.fail(`expected a bool requires_grad in ${what} but received ${describe(requiresGrad)}`);
    if (requiresGrad) this.setRequiresGrad(data, what);
    return data;
  }

  /** torch._tensor._rebuild_from_type_v2(func, new_type, args, state): a tensor subclass or a tensor with attributes. */
  private fromType(a: readonly PickleValue[]): PickleValue {
    const [func, , args] = a;
    if (!(func instanceof PickleGlobal)) this.fail(`expected a rebuild function for torch._tensor._rebuild_from_type_v2 but received ${describe(func)}`);
    if (!isPickleTuple(args)) this.fail(`expected an argument tuple for torch._tensor._rebuild_from_type_v2 but received ${describe(args)}`);
    const handler = this.globals.get(func.qualifiedName);
    if (!handler) return new PickleObject(func.qualifiedName, args);
    return handler(args, null);
  }

  dispose(keepCreated: boolean): void {
    for (const s of this.storages.values()) s.dispose();
    this.storages.clear();
    if (!keepCreated) for (const t of this.created) t.dispose();
  }
}

function sniffLegacy(file: string): string | null {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = Buffer.alloc(512);
      head = head.subarray(0, fs.readSync(fd, head, 0, 512, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw new PthError(`Cannot read PyTorch checkpoint ${file}: ${(e as Error).message}`);
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return null;
  if (head.length >= 2 && head[0] === 0x80 && head.subarray(2, 2 + LEGACY_MAGIC.length).equals(LEGACY_MAGIC)) {
    return 'it is in the legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), which is not supported; re-save it in Python with torch.save(torch.load(f), f)';
  }
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
    return 'it is a tar archive (the legacy torch.save tar format of PyTorch < 0.4), which is not supported; re-save it in Python with a current torch.save';
  }
  if (head.length >= 2 && head[0] === 0x80 && (head[1] as number) <= 5) {
    return 'it is a plain pickle, not a torch.save zip archive (only the zip format of PyTorch >= 1.6 is supported)';
  }
  return null;
}

/** Loads a torch.save checkpoint. See the file header for how Python values map to JS. */
export function loadPth(file: string, options: LoadPthOptions = {}): PthCheckpoint {
  return load(file, options).checkpoint;
}

interface PathLimit {
  maxPathChars: number;
  file: string;
}

function load(file: string, options: LoadPthOptions): { checkpoint: PthCheckpoint; created: Tensor[]; pathLimit: PathLimit } {
  if (options.device !== undefined) assertDevice(options.device, '"device"');
  const { maxMaterializedBytes } = options;
  if (maxMaterializedBytes !== undefined && !(typeof maxMaterializedBytes === 'number' && maxMaterializedBytes >= 0)) {
    throw new TypeError(`Expected a non-negative number for "maxMaterializedBytes" but received ${typeof maxMaterializedBytes === 'number' ? maxMaterializedBytes : typeof maxMaterializedBytes}`);
  }
  const legacy = sniffLegacy(file);
  if (legacy !== null) throw new PthError(`Unsupported PyTorch checkpoint ${file}: ${legacy}`);
  let zip: ZipArchive;
  try {
    zip = ZipArchive.open(file, { maxInflateRatio: options.maxInflateRatio });
  } catch (e) {
    if (e instanceof ZipError) throw new PthError(e.message, { cause: e });
    throw e;
  }
  const loader = new PthLoader(zip, file, options);
  let ok = false;
  try {
    // The archive's folder: the one holding data.pkl.
    const roots = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (roots.length === 0) {
      const names = [...zip.entries.keys()];
      loader.fail(`expected a record "<name>/data.pkl" but the archive has none (${names.length} entries${names.length ? `: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}` : ''})`);
    }
    if (roots.length > 1) loader.fail(`expected one "<name>/data.pkl" record but received ${roots.length}: ${roots.join(', ')}`);
    const prefix = (roots[0] as string).slice(0, -'/data.pkl'.length);
    loader.prefix = prefix;
    // Declared sizes of deflated records count only up to what the archive may inflate, so they cannot raise the cap by fiat.
    let stored = 0;
    let deflated = 0;
    for (const [name, e] of zip.entries) {
      if (name.startsWith(`${prefix}/data/`)) {
        if (e.method === 0) stored += e.size;
        else deflated += e.size;
      }
    }
    loader.storedBytes = stored + Math.min(deflated, zip.inflateLimit);
    loader.materializeLimit = maxMaterializedBytes ?? loader.storedBytes + MATERIALIZE_SLACK;
    if (zip.has(`${prefix}/constants.pkl`) || [...zip.entries.keys()].some((n) => n.startsWith(`${prefix}/code/`))) {
      throw new PthError(`Unsupported PyTorch checkpoint ${file}: it is a TorchScript archive (torch.jit.save); only torch.save checkpoints are supported`);
    }
    const text = (name: string): string | null => {
      const e = zip.entry(`${prefix}/${name}`);
      if (e === undefined) return null;
      if (e.size > 4096) loader.fail(`expected a short "${prefix}/${name}" record but it has ${e.size} bytes`);
      return zip.read(e).toString('utf8');
    };
    const byteorder = text('byteorder');
    if (byteorder !== null) {
      if (byteorder !== 'little' && byteorder !== 'big') loader.fail(`expected "little" or "big" in "${prefix}/byteorder" but received ${JSON.stringify(byteorder.slice(0, 40))}`);
      loader.byteorder = byteorder === 'big' ? 'big' : 'little';
    }
    const version = text('version');
    const formatVersion = text('.format_version');
    for (const [name, v] of [['version', version], ['.format_version', formatVersion]] as const) {
      if (v !== null && !/^\s*\d{1,6}\s*$/.test(v)) loader.fail(`expected a number in "${prefix}/${name}" but received ${JSON.stringify(v.slice(0, 40))}`);
    }
    const pkl = zip.read(`${prefix}/data.pkl`, { maxSize: options.maxPickleBytes ?? 1 << 30 });
    const object = unpickle(pkl, {
      source: `${file}:${prefix}/data.pkl`,
      strict: options.strict ?? false,
      globals: loader.globals,
      persistentLoad: (pid) => loader.persistentLoad(pid),
    });
    // Real checkpoints spell each path out in data.pkl about once; V8 strings end at 2^29 characters.
    const pathLimit = { maxPathChars: Math.min(2 ** 28, 2 ** 24 + 16 * pkl.length), file };
    const tensors = flatten(object, '', false, pathLimit);
    const created = loader.created;
    ok = true;
    const checkpoint: PthCheckpoint = {
      object,
      tensors,
      archiveName: prefix,
      version: version === null ? null : version.trim(),
      byteorder: loader.byteorder,
      dispose: () => {
        for (const t of created) t.dispose();
      },
    };
    return { checkpoint, created, pathLimit };
  } catch (e) {
    if (e instanceof PthError) throw e;
    if (e instanceof ZipError || e instanceof PickleError) throw new PthError(e.message, { cause: e });
    throw new PthError(`Cannot load PyTorch checkpoint ${file}: ${(e as Error).message}`, { cause: e });
  } finally {
    loader.dispose(ok);
    zip.close();
  }
}

function keyPart(k: PickleValue): string | null {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  return null;
}

/** The (path, value) pairs one level below a container. */
function* children(v: object, path: string): Generator<[string, unknown]> {
  const sub = (k: string) => (path === '' ? k : `${path}.${k}`);
  if (v instanceof Map) {
    for (const [k, x] of v) {
      const part = keyPart(k as PickleValue);
      if (part !== null) yield [sub(part), x];
    }
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) yield [sub(String(i)), v[i]];
  } else if (v instanceof PickleObject) {
    for (const [k, x] of v.attributes) yield [sub(k), x];
    if (v.dictItems) {
      for (const [k, x] of v.dictItems) {
        const part = keyPart(k);
        if (part !== null) yield [sub(part), x];
      }
    }
    if (v.listItems) for (let i = 0; i < v.listItems.length; i++) yield [sub(String(i)), v.listItems[i]];
  } else {
    for (const [k, x] of Object.entries(v)) yield [sub(k), x];
  }
}

function isContainer(v: unknown): v is object {
  return v instanceof Map || Array.isArray(v) || v instanceof PickleObject
    || (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype);
}

/**
 * Depth first, in insertion order, without recursion (a pickle nests as deep
 * as it likes in a few bytes a level). Each container is walked once, at the
 * first path that reaches it: pickles share objects through the memo, and
 * walking a shared sub-list at every path reaching it takes exponential time
 * (a list holding the same list twice, 40 levels deep); this also ends
 * cycles. The total length of the tensor paths is capped by `maxPathChars`,
 * as one long memoised key repeated along a deep chain makes paths whose total
 * length grows with the square of the pickle's size.
 */
function flatten(value: unknown, prefix: string, strictKeys: boolean, pathLimit?: PathLimit): Map<string, Tensor> {
  const maxPathChars = pathLimit?.maxPathChars ?? Infinity;
  const out = new Map<string, Tensor>();
  const walked = new Set<object>();
  const pending: Generator<[string, unknown]>[] = [];
  let pathChars = 0;
  const visit = (path: string, v: unknown): void => {
    if (v instanceof Tensor) {
      pathChars += path.length;
      if (pathChars > maxPathChars) {
        throw new PthError(`Invalid PyTorch checkpoint ${pathLimit?.file}: expected the paths of the tensors to total at most ${maxPathChars} characters but they reach ${pathChars} at a path of ${path.length} characters (long keys repeated through shared or deeply nested objects)`);
      }
      if (out.has(path)) {
        if (strictKeys) throw new PthError(`Expected unique keys in the state dict but "${path}" occurs twice`);
        return;
      }
      out.set(path, v);
      return;
    }
    if (!isContainer(v) || walked.has(v)) return;
    walked.add(v);
    pending.push(children(v, path));
  };
  visit(prefix, value);
  while (pending.length > 0) {
    const next = (pending[pending.length - 1] as Generator<[string, unknown]>).next();
    if (next.done) pending.pop();
    else visit(next.value[0], next.value[1]);
  }
  return out;
}

/**
 * Every tensor in a nested structure of dicts (Maps, OrderedDicts, plain
 * objects), lists, tuples and placeholder objects, keyed by dotted path in
 * insertion order: { state_dict: { 'module.fc.weight': T } } gives
 * 'state_dict.module.fc.weight' (or 'module.fc.weight' from the inner dict).
 * List items are keyed by index; non-tensor leaves are skipped; a key that
 * occurs twice is an error; a container reachable from two places is listed
 * under the first only.
 */
export function flattenStateDict(value: unknown, prefix = ''): Map<string, Tensor> {
  return flatten(value, prefix, true);
}

/**
 * Loads a checkpoint and returns just its state dict as Map<key, Tensor>,
 * disposing every other tensor (optimizer state, ...). See StateDictOptions.key.
 */
export function stateDictFromPth(file: string, options: StateDictOptions = {}): Map<string, Tensor> {
  const { checkpoint: ckpt, created, pathLimit } = load(file, options);
  try {
    let root: PickleValue = ckpt.object;
    if (options.key === undefined) {
      if (root instanceof Map) {
        if (root.get('state_dict') instanceof Map) root = root.get('state_dict') as PickleValue;
        else if (root.get('model') instanceof Map) root = root.get('model') as PickleValue;
      }
    } else if (options.key !== null) {
      let path = '';
      for (const part of options.key.split('.')) {
        const next: PickleValue | undefined = root instanceof Map ? (root as PickleDict).get(part) : root instanceof PickleObject ? root.get(part) : undefined;
        if (next === undefined) {
          const keys = root instanceof Map ? [...root.keys()].map((k) => JSON.stringify(k)).slice(0, 10).join(', ') : describe(root);
          throw new PthError(`Expected a key "${path === '' ? part : `${path}.${part}`}" in PyTorch checkpoint ${file} but it has ${root instanceof Map ? `the keys ${keys}` : keys}`);
        }
        path = path === '' ? part : `${path}.${part}`;
        root = next;
      }
    }
    const flat = flatten(root, '', true, pathLimit);
    const out = new Map<string, Tensor>();
    const strip = options.stripPrefix;
    for (const [k, t] of flat) {
      const key = strip !== undefined && strip !== '' && k.startsWith(strip) ? k.slice(strip.length) : k;
      if (out.has(key)) throw new PthError(`Expected unique keys in the state dict of ${file} but "${key}" occurs twice after stripping "${strip}"`);
      out.set(key, t);
    }
    const keep = new Set(out.values());
    for (const t of created) if (!keep.has(t)) t.dispose();
    return out;
  } catch (e) {
    ckpt.dispose();
    throw e;
  }
}
