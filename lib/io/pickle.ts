// A safe unpickler: a virtual machine for Python pickle protocols 0-5 that
// builds plain data and never runs anything. Globals (GLOBAL, STACK_GLOBAL,
// INST, OBJ) resolve through an allow list of handlers written here in JS
// (collections.OrderedDict, builtins.set, _codecs.encode, ...) plus those the
// caller supplies (the .pth loader adds torch's tensor rebuild functions).
// Any other global, os.system or builtins.eval included, becomes an inert
// PickleGlobal; calling it (REDUCE, NEWOBJ, INST, OBJ) makes an inert
// PickleObject placeholder that records the class name, the arguments and the
// state from BUILD. With `strict: true` an unknown global is an error instead.
//
// Python values map to JS as follows:
//   None -> null, bool -> boolean, float -> number,
//   int -> number when it is a safe integer, else bigint,
//   str -> string, bytes / bytearray -> Uint8Array,
//   list -> mutable array, tuple -> frozen array (see isPickleTuple),
//   dict -> Map (keys keep their Python types: strings, numbers, ...),
//   collections.OrderedDict -> PickleOrderedDict (a Map, with BUILD state),
//   set / frozenset -> Set, other objects -> PickleObject,
//   a global used as a value (a class, torch.float32) -> PickleGlobal.
// Python ints and floats both become numbers, so 3 and 3.0 read the same.
//
// Input is bounded: every length is checked against the bytes left before
// anything is allocated, the stack, memo and mark depth have caps, and ints
// longer than CPython's own 4300-digit text limit (or 1 MiB binary) are refused.
// Work is bounded too: the memo hands out references, never copies, and the
// allowed callables (list(x), bytes(x), ...) may copy only so many items in
// total, so a pickle cannot copy one large memoised value again and again.
// Truncated or malformed input raises a PickleError giving the byte offset.
import type { Tensor } from '../tensor/tensor';

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | readonly PickleValue[]
  | PickleDict
  | PickleSet
  | PickleObject
  | PickleGlobal
  | Tensor;

/** A Python dict; keys keep their types (Python's int keys are JS numbers). */
export type PickleDict = Map<PickleValue, PickleValue>;
export type PickleSet = Set<PickleValue>;

/** Builds a value from call arguments: the JS stand-in for an allowed Python callable. */
export type GlobalHandler = (args: readonly PickleValue[], kwargs: PickleDict | null) => PickleValue;

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A collections.OrderedDict: a Map that also keeps the state BUILD gave it (state_dict()'s `_metadata`). */
export class PickleOrderedDict extends Map<PickleValue, PickleValue> {
  state: PickleValue | undefined = undefined;
}

/** A Python global (class or function) used as a value; never callable from JS. */
export class PickleGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return `<global ${this.qualifiedName}>`;
  }
}

/**
 * An inert stand-in for an instance of a class that is not on the allow list
 * (or a call result): data only. `args` are the constructor arguments,
 * `state` what BUILD supplied (usually a dict of attributes), and
 * `listItems` / `dictItems` what APPENDS / SETITEMS added to it.
 */
export class PickleObject {
  state: PickleValue | undefined = undefined;
  listItems: PickleValue[] | undefined = undefined;
  dictItems: PickleDict | undefined = undefined;
  kwargs: PickleDict | null = null;

  constructor(readonly __class__: string, readonly args: readonly PickleValue[]) {}

  /** The attributes in the state: a dict state, or the two dicts of a (dict, slots) tuple. */
  get attributes(): Map<string, PickleValue> {
    const out = new Map<string, PickleValue>();
    const add = (d: PickleValue | undefined) => {
      if (d instanceof Map) for (const [k, v] of d) if (typeof k === 'string') out.set(k, v);
    };
    const st = this.state;
    if (isPickleTuple(st) && st.length === 2 && (st[0] === null || st[0] instanceof Map) && (st[1] === null || st[1] instanceof Map)) {
      add(st[0]);
      add(st[1]);
    } else {
      add(st);
    }
    return out;
  }

  /** One attribute of the state (e.g. `args.get('lr')` for an argparse.Namespace). */
  get(name: string): PickleValue | undefined {
    return this.attributes.get(name);
  }

  has(name: string): boolean {
    return this.attributes.has(name);
  }

  toString(): string {
    return `<${this.__class__} placeholder>`;
  }
}

export interface UnpickleOptions {
  /** Names the input in error messages (e.g. "model.pth/data.pkl"). */
  source?: string;
  /** Unknown globals raise a PickleError naming them instead of loading as placeholders (default false). */
  strict?: boolean;
  /**
   * Extra allowed globals by dotted name ("torch._utils._rebuild_tensor_v2"):
   * a handler to call, or null for a global that is allowed only as an inert
   * value (torch.FloatStorage, torch.float32). These take precedence over the built-ins.
   */
  globals?: ReadonlyMap<string, GlobalHandler | null>;
  /** Resolves persistent ids (PERSID, BINPERSID); without it they are an error. */
  persistentLoad?: (pid: PickleValue) => PickleValue;
  /** Caps on the value stack, the memo and the mark depth (default 2^24 each). */
  maxStack?: number;
  maxMemo?: number;
  /**
   * Cap on the items (elements, entries, characters, bytes) of the arguments
   * passed to allowed callables, which may copy them, summed over all calls
   * (default 2^20 + 4 x the pickle's length).
   */
  maxCopiedItems?: number;
}

const MAX_TEXT_INT_DIGITS = 4300;
const MAX_BINARY_INT_BYTES = 1 << 20;
const DEFAULT_LIMIT = 1 << 24;
const HIGHEST_PROTOCOL = 5;

/** Is this value a Python tuple (a frozen array)? */
export function isPickleTuple(v: unknown): v is readonly PickleValue[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** Is this value a Python dict or OrderedDict? */
export function isPickleDict(v: unknown): v is PickleDict {
  return v instanceof Map;
}

const tuple = (items: PickleValue[]): readonly PickleValue[] => Object.freeze(items);

/** How many items a callable could copy out of this argument. */
function copyableSize(v: PickleValue | undefined): number {
  if (typeof v === 'string' || v instanceof Uint8Array || Array.isArray(v)) return v.length;
  if (v instanceof Map || v instanceof Set) return v.size;
  return 0;
}

function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `the str ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `the number ${String(v)}`;
  if (typeof v === 'boolean') return `the bool ${v ? 'True' : 'False'}`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (Array.isArray(v)) return `${Object.isFrozen(v) ? 'a tuple' : 'a list'} of length ${v.length}`;
  if (v instanceof PickleOrderedDict) return `an OrderedDict of size ${v.size}`;
  if (v instanceof Map) return `a dict of size ${v.size}`;
  if (v instanceof Set) return `a set of size ${v.size}`;
  if (v instanceof PickleGlobal) return `the global ${v.qualifiedName}`;
  if (v instanceof PickleObject) return `a ${v.__class__} placeholder`;
  if (typeof v === 'object') return `a ${(v as object).constructor?.name ?? 'object'}`;
  return typeof v;
}

/** Python 2 module names that pickles may still use. */
const MODULE_ALIASES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg', exceptions: 'builtins' };

function iterableItems(v: PickleValue, what: string): PickleValue[] {
  if (Array.isArray(v)) return [...v];
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return [...v.keys()];
  if (typeof v === 'string') return [...v];
  throw new PickleError(`Expected an iterable for ${what} but received ${describeValue(v)}`);
}

function bytesFrom(v: PickleValue, what: string): Uint8Array {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) {
    return Uint8Array.from(v, (x) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 255) throw new PickleError(`Expected byte values 0..255 for ${what} but received ${describeValue(x)}`);
      return x;
    });
  }
  throw new PickleError(`Expected bytes or a list of ints for ${what} but received ${describeValue(v)}`);
}

function encodeString(s: PickleValue, encoding: PickleValue, what: string): Uint8Array {
  if (typeof s !== 'string') throw new PickleError(`Expected a str for ${what} but received ${describeValue(s)}`);
  const enc = typeof encoding === 'string' ? encoding.toLowerCase().replace(/[-_]/g, '') : encoding;
  if (enc === 'latin1' || enc === 'iso88591') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 255) throw new PickleError(`Expected Latin-1 characters for ${what} but received U+${c.toString(16).padStart(4, '0')}`);
      out[i] = c;
    }
    return out;
  }
  if (enc === 'utf8' || enc === null) return new Uint8Array(Buffer.from(s, 'utf8'));
  if (enc === 'ascii') {
    if (/[^\x00-\x7f]/.test(s)) throw new PickleError(`Expected ASCII characters for ${what}`);
    return new Uint8Array(Buffer.from(s, 'latin1'));
  }
  throw new PickleError(`Expected the encoding "latin1" or "utf-8" for ${what} but received ${describeValue(encoding)}`);
}

/** The globals every unpickle allows: plain-data constructors, implemented in JS. */
const BUILTIN_GLOBALS: ReadonlyMap<string, GlobalHandler | null> = new Map<string, GlobalHandler | null>([
  ['collections.OrderedDict', (args) => {
    const d = new PickleOrderedDict();
    if (args.length > 0 && args[0] !== null) {
      const src = args[0] as PickleValue;
      if (src instanceof Map) for (const [k, v] of src) d.set(k, v);
      else {
        for (const pair of iterableItems(src, 'OrderedDict(items)')) {
          if (!Array.isArray(pair) || pair.length !== 2) throw new PickleError(`Expected (key, value) pairs for OrderedDict(items) but received ${describeValue(pair)}`);
          d.set(pair[0] as PickleValue, pair[1] as PickleValue);
        }
      }
    }
    return d;
  }],
  ['builtins.dict', (args) => {
    const d: PickleDict = new Map();
    if (args[0] instanceof Map) for (const [k, v] of args[0]) d.set(k, v);
    else if (args.length > 0) {
      for (const pair of iterableItems(args[0] as PickleValue, 'dict(items)')) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new PickleError(`Expected (key, value) pairs for dict(items) but received ${describeValue(pair)}`);
        d.set(pair[0] as PickleValue, pair[1] as PickleValue);
      }
    }
    return d;
  }],
  ['builtins.list', (args) => (args.length > 0 ? iterableItems(args[0] as PickleValue, 'list(iterable)') : [])],
  ['builtins.tuple', (args) => tuple(args.length > 0 ? iterableItems(args[0] as PickleValue, 'tuple(iterable)') : [])],
  ['builtins.set', (args) => new Set(args.length > 0 ? iterableItems(args[0] as PickleValue, 'set(iterable)') : [])],
  ['builtins.frozenset', (args) => new Set(args.length > 0 ? iterableItems(args[0] as PickleValue, 'frozenset(iterable)') : [])],
  ['builtins.bytes', (args) => (args.length === 0 ? new Uint8Array(0) : args.length >= 2 ? encodeString(args[0] as PickleValue, args[1] as PickleValue, 'bytes(str, encoding)') : bytesFrom(args[0] as PickleValue, 'bytes()'))],
  ['builtins.bytearray', (args) => (args.length === 0 ? new Uint8Array(0) : args.length >= 2 ? encodeString(args[0] as PickleValue, args[1] as PickleValue, 'bytearray(str, encoding)') : bytesFrom(args[0] as PickleValue, 'bytearray()'))],
  // Protocols 0-2 write bytes as _codecs.encode(text, 'latin1').
  ['_codecs.encode', (args) => encodeString(args[0] ?? null, args.length > 1 ? (args[1] as PickleValue) : 'utf-8', '_codecs.encode')],
  ['builtins.slice', (args) => new PickleObject('builtins.slice', args)],
  ['builtins.complex', (args) => new PickleObject('builtins.complex', args)],
  ['argparse.Namespace', (args) => new PickleObject('argparse.Namespace', args)],
  ['builtins.object', null],
  // Protocols 0-1 rebuild objects as _reconstructor(cls, base, state), then BUILD.
  ['copyreg._reconstructor', (args) => {
    const [cls, base, state] = args;
    if (!(cls instanceof PickleGlobal)) throw new PickleError(`Expected a class for copyreg._reconstructor but received ${describeValue(cls)}`);
    const plain = base instanceof PickleGlobal && base.qualifiedName === 'builtins.object';
    return new PickleObject(cls.qualifiedName, plain || state === null || state === undefined ? [] : [state]);
  }],
]);

/** Runs the pickle program in `data` and returns the value it stops with. */
export function unpickle(data: Uint8Array, options: UnpickleOptions = {}): PickleValue {
  return new Unpickler(data, options).load();
}

class Unpickler {
  private pos = 0;
  private readonly stack: PickleValue[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly view: DataView;
  private readonly source: string;
  private readonly maxStack: number;
  private readonly maxMemo: number;
  private readonly maxCopied: number;
  private copied = 0;
  private opStart = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly globalCache = new Map<string, PickleGlobal>();
  private readonly handlers = new WeakMap<PickleGlobal, GlobalHandler>();

  constructor(private readonly data: Uint8Array, private readonly options: UnpickleOptions) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.source = options.source ?? '(buffer)';
    this.maxStack = options.maxStack ?? DEFAULT_LIMIT;
    this.maxMemo = options.maxMemo ?? DEFAULT_LIMIT;
    this.maxCopied = options.maxCopiedItems ?? 2 ** 20 + 4 * data.length;
  }

  private fail(message: string): never {
    throw new PickleError(`Invalid pickle ${this.source} at byte ${this.opStart}: ${message}`);
  }

  // ---- reading -----------------------------------------------------------

  private need(n: number, what: string): void {
    if (n > this.data.length - this.pos) {
      this.fail(`expected ${n} bytes for ${what} but only ${this.data.length - this.pos} remain (truncated pickle)`);
    }
  }

  private u8(what: string): number {
    this.need(1, what);
    return this.data[this.pos++] as number;
  }

  private u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  private u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private i32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.data.length - this.pos)) this.fail(`expected at most ${this.data.length - this.pos} bytes for ${what} but the length field says ${v} (truncated or corrupt pickle)`);
    return Number(v);
  }

  private bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private line(what: string): Uint8Array {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) this.fail(`expected a newline-terminated argument for ${what} but the data ends first (truncated pickle)`);
    const out = this.data.subarray(this.pos, end);
    this.pos = end + 1;
    return out;
  }

  private utf8(b: Uint8Array, what: string): string {
    try {
      return this.decoder.decode(b);
    } catch {
      this.fail(`expected UTF-8 text for ${what} but the bytes are not valid UTF-8`);
    }
  }

  private ascii(b: Uint8Array): string {
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  }

  // ---- the stack -----------------------------------------------------------

  private push(v: PickleValue): void {
    if (this.stack.length >= this.maxStack) this.fail(`the stack exceeds ${this.maxStack} items`);
    this.stack.push(v);
  }

  private pop(what: string): PickleValue {
    const base = this.marks.length > 0 ? (this.marks[this.marks.length - 1] as number) : 0;
    if (this.stack.length <= base) this.fail(`expected a value on the stack for ${what} but it is empty`);
    return this.stack.pop() as PickleValue;
  }

  private top(what: string): PickleValue {
    const base = this.marks.length > 0 ? (this.marks[this.marks.length - 1] as number) : 0;
    if (this.stack.length <= base) this.fail(`expected a value on the stack for ${what} but it is empty`);
    return this.stack[this.stack.length - 1] as PickleValue;
  }

  private popMark(what: string): PickleValue[] {
    const m = this.marks.pop();
    if (m === undefined) this.fail(`expected a MARK before ${what} but there is none`);
    return this.stack.splice(m);
  }

  // ---- values --------------------------------------------------------------

  private int(v: bigint): number | bigint {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private parseTextInt(text: string, what: string): number | bigint {
    let t = text.trim().replace(/_/g, '');
    let sign = 1n;
    if (t.startsWith('-')) {
      sign = -1n;
      t = t.slice(1);
    } else if (t.startsWith('+')) {
      t = t.slice(1);
    }
    if (!/^(\d+|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)$/.test(t)) this.fail(`expected an integer for ${what} but received ${JSON.stringify(text.slice(0, 40))}`);
    if (t.length > MAX_TEXT_INT_DIGITS) this.fail(`expected at most ${MAX_TEXT_INT_DIGITS} digits for ${what} but received ${t.length}`);
    if (/^0\d/.test(t)) t = t.replace(/^0+(?=\d)/, '');
    return this.int(sign * BigInt(t));
  }

  private parseTextFloat(text: string): number {
    const t = text.trim().toLowerCase();
    if (t === 'inf' || t === '+inf' || t === 'infinity') return Infinity;
    if (t === '-inf' || t === '-infinity') return -Infinity;
    if (t === 'nan' || t === '+nan' || t === '-nan') return NaN;
    const v = Number(t);
    if (t === '' || Number.isNaN(v)) this.fail(`expected a float for FLOAT but received ${JSON.stringify(text.slice(0, 40))}`);
    return v;
  }

  private binaryInt(b: Uint8Array): number | bigint {
    if (b.length === 0) return 0;
    let hex = '';
    for (let i = b.length - 1; i >= 0; i--) hex += (b[i] as number).toString(16).padStart(2, '0');
    let v = BigInt(`0x${hex}`);
    if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
    return this.int(v);
  }

  /** Decodes the body of a repr()-quoted Python 2 str (the STRING opcode). */
  private unescapeString(raw: Uint8Array): Uint8Array {
    const q = raw[0];
    if (raw.length < 2 || (q !== 0x27 && q !== 0x22) || raw[raw.length - 1] !== q) this.fail('expected a quoted string for STRING');
    const body = raw.subarray(1, raw.length - 1);
    const out: number[] = [];
    const simple: Record<number, number> = { 0x5c: 0x5c, 0x27: 0x27, 0x22: 0x22, 0x6e: 0x0a, 0x74: 0x09, 0x72: 0x0d, 0x61: 0x07, 0x62: 0x08, 0x66: 0x0c, 0x76: 0x0b, 0x0a: -1 };
    for (let i = 0; i < body.length; i++) {
      const c = body[i] as number;
      if (c !== 0x5c) {
        out.push(c);
        continue;
      }
      const n = body[++i];
      if (n === undefined) this.fail('expected an escape after the trailing backslash in STRING');
      const s = simple[n];
      if (s !== undefined) {
        if (s >= 0) out.push(s);
      } else if (n === 0x78) {
        const h = this.ascii(body.subarray(i + 1, i + 3));
        if (!/^[0-9a-fA-F]{2}$/.test(h)) this.fail('expected two hex digits after \\x in STRING');
        out.push(parseInt(h, 16));
        i += 2;
      } else if (n >= 0x30 && n <= 0x37) {
        let j = i;
        let v = 0;
        while (j < body.length && j < i + 3 && (body[j] as number) >= 0x30 && (body[j] as number) <= 0x37) v = v * 8 + (body[j++] as number) - 0x30;
        out.push(v & 0xff);
        i = j - 1;
      } else {
        out.push(0x5c, n);
      }
    }
    return Uint8Array.from(out);
  }

  /** Decodes Python's raw-unicode-escape (the UNICODE opcode). */
  private rawUnicodeEscape(b: Uint8Array): string {
    let out = '';
    let backslashes = 0;
    for (let i = 0; i < b.length; i++) {
      const c = b[i] as number;
      if (c === 0x5c && backslashes % 2 === 0 && (b[i + 1] === 0x75 || b[i + 1] === 0x55)) {
        const n = b[i + 1] === 0x75 ? 4 : 8;
        const h = this.ascii(b.subarray(i + 2, i + 2 + n));
        if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) this.fail(`expected ${n} hex digits after \\${n === 4 ? 'u' : 'U'} in UNICODE`);
        const cp = parseInt(h, 16);
        if (cp > 0x10ffff) this.fail(`expected a code point up to U+10FFFF in UNICODE but received U+${h}`);
        out += String.fromCodePoint(cp);
        i += 1 + n;
        backslashes = 0;
        continue;
      }
      backslashes = c === 0x5c ? backslashes + 1 : 0;
      out += String.fromCharCode(c);
    }
    return out;
  }

  // ---- globals and calls -------------------------------------------------

  private findGlobal(moduleRaw: string, name: string): PickleGlobal {
    const module = MODULE_ALIASES[moduleRaw] ?? moduleRaw;
    const key = `${module}.${name}`;
    const cached = this.globalCache.get(key);
    if (cached !== undefined) return cached;
    const extra = this.options.globals;
    let handler: GlobalHandler | null;
    if (extra?.has(key)) {
      handler = extra.get(key) ?? null;
    } else if (BUILTIN_GLOBALS.has(key)) {
      handler = BUILTIN_GLOBALS.get(key) ?? null;
    } else {
      if (this.options.strict) {
        throw new PickleError(`Unsafe pickle ${this.source} at byte ${this.opStart}: expected an allowed global (strict mode) but received ${key}; nothing was loaded`);
      }
      handler = null;
    }
    const g = new PickleGlobal(module, name);
    if (handler) this.handlers.set(g, handler);
    this.globalCache.set(key, g);
    return g;
  }

  private instantiate(callable: PickleValue, args: readonly PickleValue[], kwargs: PickleDict | null, what: string): PickleValue {
    if (callable instanceof PickleGlobal) {
      const handler = this.handlers.get(callable);
      if (handler === undefined) {
        const o = new PickleObject(callable.qualifiedName, args);
        o.kwargs = kwargs;
        return o;
      }
      for (const a of args) this.copied += copyableSize(a);
      this.copied += copyableSize(kwargs ?? undefined);
      if (this.copied > this.maxCopied) {
        this.fail(`expected the arguments of allowed calls to hold at most ${this.maxCopied} items in total but ${callable.qualifiedName}(...) for ${what} brings them to ${this.copied} (a pickle that copies a large value again and again)`);
      }
      try {
        return handler(args, kwargs);
      } catch (e) {
        // Handlers report bad arguments with an unprefixed PickleError; place it.
        if (e instanceof PickleError && !/^(Invalid|Unsafe) pickle/.test(e.message)) this.fail(`${callable.qualifiedName}(...) for ${what}: ${e.message}`);
        throw e;
      }
    }
    if (callable instanceof PickleObject) {
      const o = new PickleObject(`${callable.__class__}.__call__`, args);
      o.kwargs = kwargs;
      return o;
    }
    this.fail(`expected a class or function for ${what} but received ${describeValue(callable)}`);
  }

  private build(obj: PickleValue, state: PickleValue): void {
    if (obj instanceof PickleObject) {
      obj.state = state;
    } else if (obj instanceof PickleOrderedDict) {
      obj.state = state;
    } else if (state !== null) {
      this.fail(`expected a placeholder object or OrderedDict for BUILD but received ${describeValue(obj)} (with state ${describeValue(state)})`);
    }
  }

  private setItems(target: PickleValue, items: PickleValue[], what: string): void {
    if (items.length % 2 !== 0) this.fail(`expected key/value pairs for ${what} but received an odd number of items (${items.length})`);
    let dict: PickleDict;
    if (target instanceof Map) dict = target;
    else if (target instanceof PickleObject) dict = target.dictItems ??= new Map();
    else this.fail(`expected a dict for ${what} but received ${describeValue(target)}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i] as PickleValue, items[i + 1] as PickleValue);
  }

  private appendItems(target: PickleValue, items: PickleValue[], what: string): void {
    let list: PickleValue[];
    if (Array.isArray(target) && !Object.isFrozen(target)) list = target as PickleValue[];
    else if (target instanceof PickleObject) list = target.listItems ??= [];
    else this.fail(`expected a list for ${what} but received ${describeValue(target)}`);
    for (const v of items) list.push(v); // not push(...items): a long MARK run would overflow the call stack
  }

  private memoPut(index: number, v: PickleValue): void {
    if (!this.memo.has(index) && this.memo.size >= this.maxMemo) this.fail(`the memo exceeds ${this.maxMemo} entries`);
    this.memo.set(index, v);
  }

  private memoGet(index: number): PickleValue {
    if (!this.memo.has(index)) this.fail(`expected memo entry ${index} to exist but it was never stored`);
    return this.memo.get(index) as PickleValue;
  }

  private persistent(pid: PickleValue): PickleValue {
    const load = this.options.persistentLoad;
    if (load === undefined) this.fail('expected no persistent ids (no persistent_load was given) but the pickle has one');
    return load(pid);
  }

  // ---- the machine -------------------------------------------------------

  load(): PickleValue {
    const d = this.data;
    for (;;) {
      this.opStart = this.pos;
      if (this.pos >= d.length) this.fail(`expected a STOP opcode but the data ends at byte ${d.length} (truncated pickle)`);
      const op = d[this.pos++] as number;
      switch (op) {
        case 0x80: { // PROTO
          const v = this.u8('PROTO');
          if (v > HIGHEST_PROTOCOL) this.fail(`expected pickle protocol 0..${HIGHEST_PROTOCOL} but received ${v}`);
          break;
        }
        case 0x95: // FRAME: a length prefix only; the data is read in place
          this.u64('FRAME');
          break;
        case 0x2e: // STOP
          return this.pop('STOP');
        case 0x28: // MARK
          if (this.marks.length >= this.maxStack) this.fail(`the mark depth exceeds ${this.maxStack}`);
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          if (this.stack.length > (this.marks.length > 0 ? (this.marks[this.marks.length - 1] as number) : 0)) this.stack.pop();
          else this.popMark('POP');
          break;
        case 0x31: // POP_MARK
          this.popMark('POP_MARK');
          break;
        case 0x32: // DUP
          this.push(this.top('DUP'));
          break;

        // ---- constants and numbers
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4b: this.push(this.u8('BININT1')); break;
        case 0x4d: this.push(this.u16('BININT2')); break;
        case 0x4a: this.push(this.i32('BININT')); break;
        case 0x8a: { // LONG1
          const n = this.u8('LONG1');
          this.push(this.binaryInt(this.bytes(n, 'LONG1')));
          break;
        }
        case 0x8b: { // LONG4
          const n = this.i32('LONG4');
          if (n < 0) this.fail(`expected a non-negative length for LONG4 but received ${n}`);
          if (n > MAX_BINARY_INT_BYTES) this.fail(`expected at most ${MAX_BINARY_INT_BYTES} bytes for LONG4 but received ${n}`);
          this.push(this.binaryInt(this.bytes(n, 'LONG4')));
          break;
        }
        case 0x49: { // INT
          const t = this.ascii(this.line('INT'));
          if (t === '00') this.push(false);
          else if (t === '01') this.push(true);
          else this.push(this.parseTextInt(t, 'INT'));
          break;
        }
        case 0x4c: { // LONG
          let t = this.ascii(this.line('LONG'));
          if (t.endsWith('L')) t = t.slice(0, -1);
          this.push(this.parseTextInt(t, 'LONG'));
          break;
        }
        case 0x46: // FLOAT
          this.push(this.parseTextFloat(this.ascii(this.line('FLOAT'))));
          break;
        case 0x47: { // BINFLOAT (big-endian)
          this.need(8, 'BINFLOAT');
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }

        // ---- strings and bytes
        case 0x58: this.push(this.utf8(this.bytes(this.u32('BINUNICODE'), 'BINUNICODE'), 'BINUNICODE')); break;
        case 0x8c: this.push(this.utf8(this.bytes(this.u8('SHORT_BINUNICODE'), 'SHORT_BINUNICODE'), 'SHORT_BINUNICODE')); break;
        case 0x8d: this.push(this.utf8(this.bytes(this.u64('BINUNICODE8'), 'BINUNICODE8'), 'BINUNICODE8')); break;
        case 0x56: this.push(this.rawUnicodeEscape(this.line('UNICODE'))); break;
        case 0x53: this.push(this.utf8(this.unescapeString(this.line('STRING')), 'STRING')); break;
        case 0x54: { // BINSTRING
          const n = this.i32('BINSTRING');
          if (n < 0) this.fail(`expected a non-negative length for BINSTRING but received ${n}`);
          this.push(this.utf8(this.bytes(n, 'BINSTRING'), 'BINSTRING'));
          break;
        }
        case 0x55: this.push(this.utf8(this.bytes(this.u8('SHORT_BINSTRING'), 'SHORT_BINSTRING'), 'SHORT_BINSTRING')); break;
        case 0x42: this.push(this.bytes(this.u32('BINBYTES'), 'BINBYTES').slice()); break;
        case 0x43: this.push(this.bytes(this.u8('SHORT_BINBYTES'), 'SHORT_BINBYTES').slice()); break;
        case 0x8e: this.push(this.bytes(this.u64('BINBYTES8'), 'BINBYTES8').slice()); break;
        case 0x96: this.push(this.bytes(this.u64('BYTEARRAY8'), 'BYTEARRAY8').slice()); break;
        case 0x97: // NEXT_BUFFER
          this.fail('expected in-band data but NEXT_BUFFER asks for an out-of-band buffer, which is not supported');
        case 0x98: // READONLY_BUFFER: no-op on our copies
          this.top('READONLY_BUFFER');
          break;

        // ---- containers
        case 0x7d: this.push(new Map()); break; // EMPTY_DICT
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x29: this.push(tuple([])); break; // EMPTY_TUPLE
        case 0x8f: this.push(new Set()); break; // EMPTY_SET
        case 0x85: { // TUPLE1
          const a = this.pop('TUPLE1');
          this.push(tuple([a]));
          break;
        }
        case 0x86: { // TUPLE2
          const b = this.pop('TUPLE2');
          const a = this.pop('TUPLE2');
          this.push(tuple([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop('TUPLE3');
          const b = this.pop('TUPLE3');
          const a = this.pop('TUPLE3');
          this.push(tuple([a, b, c]));
          break;
        }
        case 0x74: this.push(tuple(this.popMark('TUPLE'))); break; // TUPLE
        case 0x6c: this.push(this.popMark('LIST')); break; // LIST
        case 0x64: { // DICT
          const items = this.popMark('DICT');
          const dict: PickleDict = new Map();
          this.setItems(dict, items, 'DICT');
          this.push(dict);
          break;
        }
        case 0x91: this.push(new Set(this.popMark('FROZENSET'))); break; // FROZENSET
        case 0x61: { // APPEND
          const v = this.pop('APPEND');
          this.appendItems(this.top('APPEND'), [v], 'APPEND');
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark('APPENDS');
          this.appendItems(this.top('APPENDS'), items, 'APPENDS');
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop('SETITEM');
          const k = this.pop('SETITEM');
          this.setItems(this.top('SETITEM'), [k, v], 'SETITEM');
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark('SETITEMS');
          this.setItems(this.top('SETITEMS'), items, 'SETITEMS');
          break;
        }
        case 0x90: { // ADDITEMS
          const items = this.popMark('ADDITEMS');
          const target = this.top('ADDITEMS');
          if (target instanceof Set) for (const v of items) target.add(v);
          else if (target instanceof PickleObject) this.appendItems(target, items, 'ADDITEMS');
          else this.fail(`expected a set for ADDITEMS but received ${describeValue(target)}`);
          break;
        }

        // ---- memo
        case 0x71: this.memoPut(this.u8('BINPUT'), this.top('BINPUT')); break;
        case 0x72: this.memoPut(this.u32('LONG_BINPUT'), this.top('LONG_BINPUT')); break;
        case 0x70: this.memoPut(this.memoIndex(this.ascii(this.line('PUT')), 'PUT'), this.top('PUT')); break;
        case 0x94: this.memoPut(this.memo.size, this.top('MEMOIZE')); break;
        case 0x68: this.push(this.memoGet(this.u8('BINGET'))); break;
        case 0x6a: this.push(this.memoGet(this.u32('LONG_BINGET'))); break;
        case 0x67: this.push(this.memoGet(this.memoIndex(this.ascii(this.line('GET')), 'GET'))); break;

        // ---- globals, objects and calls
        case 0x63: { // GLOBAL
          const module = this.utf8(this.line('GLOBAL'), 'GLOBAL');
          const name = this.utf8(this.line('GLOBAL'), 'GLOBAL');
          this.push(this.findGlobal(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop('STACK_GLOBAL');
          const module = this.pop('STACK_GLOBAL');
          if (typeof module !== 'string' || typeof name !== 'string') {
            this.fail(`expected two strs for STACK_GLOBAL but received ${describeValue(module)} and ${describeValue(name)}`);
          }
          this.push(this.findGlobal(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop('REDUCE');
          const callable = this.pop('REDUCE');
          if (!isPickleTuple(args)) this.fail(`expected an argument tuple for REDUCE but received ${describeValue(args)}`);
          this.push(this.instantiate(callable, args, null, 'REDUCE'));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop('NEWOBJ');
          const cls = this.pop('NEWOBJ');
          if (!isPickleTuple(args)) this.fail(`expected an argument tuple for NEWOBJ but received ${describeValue(args)}`);
          this.push(this.instantiate(cls, args, null, 'NEWOBJ'));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop('NEWOBJ_EX');
          const args = this.pop('NEWOBJ_EX');
          const cls = this.pop('NEWOBJ_EX');
          if (!isPickleTuple(args) || !(kwargs instanceof Map)) this.fail(`expected an argument tuple and a keyword dict for NEWOBJ_EX but received ${describeValue(args)} and ${describeValue(kwargs)}`);
          this.push(this.instantiate(cls, args, kwargs, 'NEWOBJ_EX'));
          break;
        }
        case 0x69: { // INST
          const module = this.utf8(this.line('INST'), 'INST');
          const name = this.utf8(this.line('INST'), 'INST');
          const args = this.popMark('INST');
          this.push(this.instantiate(this.findGlobal(module, name), args, null, 'INST'));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark('OBJ');
          if (items.length === 0) this.fail('expected a class after the MARK for OBJ but there is none');
          const cls = items.shift() as PickleValue;
          this.push(this.instantiate(cls, items, null, 'OBJ'));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop('BUILD');
          this.build(this.top('BUILD'), state);
          break;
        }
        case 0x82: case 0x83: case 0x84: { // EXT1, EXT2, EXT4
          const code = op === 0x82 ? this.u8('EXT1') : op === 0x83 ? this.u16('EXT2') : this.i32('EXT4');
          this.fail(`expected no copyreg extension codes but received EXT code ${code}, which is not supported`);
        }
        case 0x50: // PERSID
          this.push(this.persistent(this.ascii(this.line('PERSID'))));
          break;
        case 0x51: // BINPERSID
          this.push(this.persistent(this.pop('BINPERSID')));
          break;
        default:
          this.fail(`expected a pickle opcode but received byte 0x${op.toString(16).padStart(2, '0')}${op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : ''}`);
      }
    }
  }

  private memoIndex(text: string, what: string): number {
    if (!/^\d{1,10}$/.test(text)) this.fail(`expected a memo index for ${what} but received ${JSON.stringify(text.slice(0, 20))}`);
    return Number(text);
  }
}
