// Hostile .pth files that are small on disk but ask for exponential work or
// gigabytes of memory: each must load or fail with a clear error well within
// a second or two (a bound on the amount of work, not a benchmark), while
// legitimate files (test/io/pth.test.ts) keep loading. The files are built
// here, byte by byte.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as et from '../../lib';
import { loadPth, PthError } from '../../lib/io/pth';
import { unpickle, PickleError } from '../../lib/io/pickle';
import { ZipArchive, ZipError } from '../../lib/io/zip';
import { tmpDir } from '../helpers/oracle';

let dir = '';
before(() => {
  dir = tmpDir('extrema-pth-limits-');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs fn and asserts it finished within `ms` (exponential or gigabyte-sized work never does). */
function within<T>(ms: number, what: string, fn: () => T): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < ms, `${what} took ${elapsed.toFixed(0)} ms, more than ${ms} ms`);
  }
}

// ---- a pickle assembler (protocol 2 opcodes) -------------------------------

const b = (...parts: (string | Uint8Array)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
const u32 = (n: number): Buffer => {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(n);
  return out;
};
const str = (s: string) => b('X', u32(Buffer.byteLength(s)), Buffer.from(s, 'utf8'));
const int = (n: number) => {
  const out = Buffer.alloc(5);
  out[0] = 0x4a; // BININT
  out.writeInt32LE(n, 1);
  return out;
};
const global = (module: string, name: string) => b(`c${module}\n${name}\n`);
const put = (i: number) => b('r', u32(i)); // LONG_BINPUT
const get = (i: number) => b('j', u32(i)); // LONG_BINGET
const ints = (xs: number[]) => b('(', ...xs.map(int), 't');
/** torch._utils._rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), offset, size, stride, False, OrderedDict()). */
const tensor = (key: string, numel: number, offset: number, size: number[], stride: number[]) => b(
  global('torch._utils', '_rebuild_tensor_v2'),
  '(', '(', str('storage'), global('torch', 'FloatStorage'), str(key), str('cpu'), int(numel), 't', 'Q',
  int(offset), ints(size), ints(stride), '\x89', global('collections', 'OrderedDict'), ')R', 't', 'R',
);
const pickle = (...body: Buffer[]) => b('\x80\x02', ...body, '.');

// ---- a zip writer ------------------------------------------------------------

interface Record {
  name: string;
  data: Uint8Array;
  /** A deflate stream to store instead of `data`, and the uncompressed size to declare for it. */
  deflated?: { stream: Uint8Array; size: number; crc: number };
}

function zipOf(records: Record[]): Buffer {
  const local: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const r of records) {
    const name = Buffer.from(r.name);
    const body = r.deflated?.stream ?? r.data;
    const method = r.deflated ? 8 : 0;
    const crc = r.deflated?.crc ?? zlib.crc32(r.data);
    const size = r.deflated?.size ?? r.data.length;
    const zip64 = size >= 0xffffffff;
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(45, 4);
    h.writeUInt16LE(method, 8);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(body.length, 18);
    h.writeUInt32LE(zip64 ? 0xffffffff : size, 22);
    h.writeUInt16LE(name.length, 26);
    local.push(h, name, body);
    const extra = zip64 ? Buffer.alloc(12) : Buffer.alloc(0);
    if (zip64) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(8, 2);
      extra.writeBigUInt64LE(BigInt(size), 4);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(45, 6);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(body.length, 20);
    c.writeUInt32LE(zip64 ? 0xffffffff : size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(offset, 42);
    central.push(c, name, extra);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...local, cd, end]);
}

function writeCheckpoint(name: string, pkl: Buffer, storages: Record[] = []): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, zipOf([{ name: 'archive/data.pkl', data: pkl }, ...storages, { name: 'archive/byteorder', data: Buffer.from('little') }]));
  return f;
}

const floats = (xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const live = () => et.memory().liveTensors;

// ---- the three cases of the issue ------------------------------------------

test('shared nested lists load in linear time: each shared container is walked once', () => {
  // L0 = [t]; L(i) = [L(i-1), L(i-1)]: 2^41 paths reach t through 41 levels of sharing.
  const depth = 40;
  const levels: Buffer[] = [b(']', '(', tensor('0', 1, 0, [1], [1]), 'e', put(0))];
  for (let i = 1; i <= depth; i++) levels.push(b(']', '(', get(i - 1), get(i - 1), 'e', put(i)));
  const pkl = pickle(...levels);
  assert.ok(pkl.length < 1500, `the pickle has ${pkl.length} bytes`);
  const file = writeCheckpoint('shared.pth', pkl, [{ name: 'archive/data/0', data: floats([7]) }]);
  // In a child process that is killed if it runs away, so a regression fails instead of hanging the suite.
  const script = `
    const { loadPth } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'lib', 'io', 'pth.js'))});
    const t0 = performance.now();
    const ckpt = loadPth(${JSON.stringify(file)});
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, keys: [...ckpt.tensors.keys()], values: [...ckpt.tensors.values()].map((t) => t.toArray()) }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `loadPth ran for a minute on a ${pkl.length}-byte pickle of shared lists`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ms: number; keys: string[]; values: unknown[] };
  assert.ok(out.ms < 3000, `loadPth took ${out.ms.toFixed(0)} ms`);
  assert.deepEqual(out.keys, [Array(depth + 1).fill('0').join('.')], 'the tensor, once, at the first path that reaches it');
  assert.deepEqual(out.values, [[7]]);
});

test('a stride-0 view cannot materialise more than the stored bytes plus 64 MiB unless asked to', () => {
  const baseline = live();
  // 6 stored floats claimed as a [16384, 16384] tensor: 1 GiB from a file of about 1 KB.
  const bomb = writeCheckpoint('stride0.pth', pickle(tensor('0', 6, 0, [16384, 16384], [0, 0])), [{ name: 'archive/data/0', data: floats([1, 2, 3, 4, 5, 6]) }]);
  assert.ok(fs.statSync(bomb).size < 1024);
  within(2000, 'the 1 GiB stride-0 view', () => assert.throws(() => loadPth(bomb), (e: Error) => {
    assert.ok(e instanceof PthError, `${e.name}: ${e.message}`);
    assert.match(e.message, /stride0\.pth: the tensor of size \[16384, 16384\] \(stride \[0, 0\]\) in torch\._utils\._rebuild_tensor_v2 takes 1073741824 bytes, .*more than the 67108888 allowed \(maxMaterializedBytes, by default the 24 bytes of the storage records plus 64 MiB; raise it to load this file\)/);
    return true;
  }));
  // A modest stride-0 tensor (what expand() saves) loads by default and obeys a lower cap.
  const small = writeCheckpoint('expand.pth', pickle(tensor('0', 6, 4, [256, 256], [0, 0])), [{ name: 'archive/data/0', data: floats([1, 2, 3, 4, 5, 6]) }]);
  const ckpt = loadPth(small);
  const t = ckpt.object as et.Tensor;
  assert.deepEqual(t.shape, [256, 256]);
  assert.equal(et.scope(() => t.sum().item()), 5 * 256 * 256);
  ckpt.dispose();
  assert.throws(() => loadPth(small, { maxMaterializedBytes: 256 * 1024 - 1 }), (e: Error) => e instanceof PthError && /takes 262144 bytes, .*more than the 262143 allowed \(maxMaterializedBytes/.test(e.message));
  assert.throws(() => loadPth(small, { maxMaterializedBytes: -1 }), (e: Error) => e instanceof TypeError && /non-negative number for "maxMaterializedBytes" but received -1/.test(e.message));
  // Rebuilding one whole storage again and again counts every copy.
  const n = 600;
  const stored = floats(new Array(32 * 1024).fill(1)); // 128 KiB
  const repeated = writeCheckpoint('repeat.pth', pickle(b(']', '('), ...Array.from({ length: n }, () => tensor('0', 32 * 1024, 0, [32 * 1024], [1])), b('e')), [{ name: 'archive/data/0', data: stored }]);
  within(3000, 'the repeated storage', () => assert.throws(() => loadPth(repeated), (e: Error) => e instanceof PthError && /maxMaterializedBytes/.test(e.message)));
  assert.equal(live(), baseline, 'failed loads dispose what they created');
});

/** A raw deflate stream of `blocks` MiB of zeros: one fully flushed block repeated, as zip bombs do. */
function zeroBomb(blocks: number): { stream: Buffer; size: number; crc: number } {
  const mib = Buffer.alloc(1 << 20);
  const block = zlib.deflateRawSync(mib, { level: 9, finishFlush: zlib.constants.Z_FULL_FLUSH });
  let crc = 0;
  for (let i = 0; i < blocks; i++) crc = zlib.crc32(mib, crc);
  return { stream: Buffer.concat([...Array(blocks).fill(block), Buffer.from([0x03, 0x00])]), size: blocks << 20, crc };
}

test('a 1 MB zip that inflates to 1 GiB is refused before inflating; maxInflateRatio names the limit', () => {
  const small = zeroBomb(4);
  assert.equal(zlib.inflateRawSync(small.stream).length, 4 << 20, 'the construction inflates as declared');
  const bomb = zeroBomb(1024);
  assert.ok(bomb.stream.length < 1.1e6, `${bomb.stream.length} compressed bytes`);
  const zip = zipOf([{ name: 'archive/data.pkl', data: pickle(tensor('0', 1 << 28, 0, [1 << 28], [1])) }, { name: 'archive/data/0', data: new Uint8Array(0), deflated: bomb }]);
  const archive = ZipArchive.fromBuffer(zip, 'bomb.zip');
  within(1000, 'reading the bomb', () => assert.throws(() => archive.read('archive/data/0'), (e: Error) => e instanceof ZipError
    && /Invalid zip archive bomb\.zip: entry "archive\/data\/0" would inflate to 1073741824 bytes \(after 0 already inflated\), more than the 67108864 bytes allowed for a \d+-byte archive \(maxInflateRatio 32; raise it to read this archive\)/.test(e.message)));
  // Through loadPth, with the materialisation cap out of the way.
  const file = path.join(dir, 'bomb.pth');
  fs.writeFileSync(file, zip);
  within(1000, 'loading the bomb', () => assert.throws(() => loadPth(file, { maxMaterializedBytes: 2 ** 31 }), (e: Error) => e instanceof PthError && e.cause instanceof ZipError && /bomb\.pth: entry "archive\/data\/0" would inflate .*maxInflateRatio 32/.test(e.message)));
  assert.throws(() => loadPth(file), (e: Error) => e instanceof PthError && /maxMaterializedBytes/.test(e.message), 'the declared size alone does not raise the materialisation cap');
  // The cap counts every read, and a caller can raise or lower it.
  const twice = ZipArchive.fromBuffer(zipOf([{ name: 'z', data: new Uint8Array(0), deflated: small }]), 'small.zip', { maxInflateRatio: 1 });
  assert.equal(twice.read('z').length, 4 << 20);
  assert.throws(() => ZipArchive.fromBuffer(zip, 'x', { maxInflateRatio: 0 }), (e: Error) => e instanceof TypeError && /number >= 1 for "maxInflateRatio" but received 0/.test(e.message));
});

// ---- other amplification paths ---------------------------------------------

test('overlapping entries, inflated ZIP64 sizes and impossible entry counts fail when the archive is opened or read', () => {
  const good = zipOf([{ name: 'a', data: Buffer.from('hello') }, { name: 'b', data: Buffer.from('world') }]);
  // Point entry "b" at entry "a"'s bytes: the zip-bomb trick of reusing one stream.
  const overlapping = Buffer.from(good);
  const secondCentral = overlapping.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  overlapping.writeUInt32LE(0, secondCentral + 42);
  assert.throws(() => ZipArchive.fromBuffer(overlapping, 'o.zip'), /Invalid zip archive o\.zip: entries "a" \(bytes 0 to at least 36\) and "b" \(from byte 0\) overlap/);

  const huge = zipOf([{ name: 'h', data: new Uint8Array(0), deflated: { stream: Buffer.from([0x03, 0x00]), size: 2 ** 40, crc: 0 } }]);
  const z = ZipArchive.fromBuffer(huge, 'h.zip');
  assert.equal(z.entry('h')?.size, 2 ** 40, 'the ZIP64 size is read');
  within(1000, 'the 1 TiB entry', () => assert.throws(() => z.read('h'), /entry "h" would inflate to 1099511627776 bytes/));

  const counted = Buffer.from(good);
  counted.writeUInt16LE(60000, counted.length - 12);
  counted.writeUInt16LE(60000, counted.length - 14);
  assert.throws(() => ZipArchive.fromBuffer(counted, 'c.zip'), /expected at least 2760000 bytes of central directory for 60000 entries but received \d+/);
});

test('declared lengths beyond the input fail before anything is allocated', () => {
  const cases: [string, Buffer][] = [
    ['BINBYTES', b('B', u32(0xffffffff), 'abc')],
    ['BINUNICODE', b('X', u32(0xffffffff), 'abc')],
    ['BINSTRING', b('T', u32(0x7fffffff), 'abc')],
    ['BINUNICODE8', b('\x8d\xff\xff\xff\xff\xff\xff\x00\x00abc')],
    ['BYTEARRAY8', b('\x96\x00\x00\x00\x00\x00\x01\x00\x00abc')],
    ['FRAME', b('\x95\xff\xff\xff\xff\xff\x00\x00\x00')],
  ];
  for (const [op, data] of cases) {
    within(500, op, () => assert.throws(() => unpickle(data, { source: 'len.pkl' }), (e: Error) => e instanceof PickleError && e.message.includes(op) && /truncated/.test(e.message), op));
  }
});

test('copying one large memoised value again and again hits the copy budget', () => {
  // A 100,000-item list, then list(that list) called 10,000 times: 10^9 items copied from 330 KB.
  const items = 100_000;
  const copies = 10_000;
  const pkl = pickle(
    b(']', put(0), '(', 'K\x01'.repeat(items), 'e', '0'),
    global('builtins', 'list'), put(1), b('0'),
    ...Array.from({ length: copies }, () => b(get(1), get(0), '\x85', 'R', '0')),
    b('N'),
  );
  assert.ok(pkl.length < 400_000);
  within(2000, 'the repeated copies', () => assert.throws(() => unpickle(pkl, { source: 'copies.pkl' }), (e: Error) => e instanceof PickleError
    && /copies\.pkl at byte \d+: expected the arguments of allowed calls to hold at most \d+ items in total but builtins\.list\(\.\.\.\) for REDUCE brings them to \d+/.test(e.message)));
  // A few copies are fine, and the budget can be set.
  const few = pickle(b(']', put(0), '(', 'K\x01'.repeat(10), 'e'), global('builtins', 'list'), get(0), b('\x85', 'R'));
  assert.deepEqual(unpickle(few), new Array(10).fill(1));
  assert.throws(() => unpickle(few, { maxCopiedItems: 9 }), /at most 9 items in total but builtins\.list\(\.\.\.\) for REDUCE brings them to 10/);
});

test('deep nesting loads without recursion, and long keys repeated along it are capped', () => {
  const storage = [{ name: 'archive/data/0', data: floats([3]) }];
  // ((((t,),),) ...): one byte a level, deeper than a recursive walk could go.
  const depth = 100_000;
  const deep = writeCheckpoint('deep.pth', pickle(tensor('0', 1, 0, [1], [1]), b('\x85'.repeat(depth))), storage);
  const ckpt = within(3000, 'the deep tuple', () => loadPth(deep));
  assert.deepEqual([...ckpt.tensors.keys()].map((k) => k.length), [2 * depth - 1]);
  ckpt.dispose();

  // {k: {k: ... {k: t, 't': t} ..., 't': t}, 't': t} with k a 100 KB str stored once in the memo:
  // the tensor paths would total 2000^2 / 2 x 100 KB from a 70 KB pickle.
  const levels = 2000;
  const body: Buffer[] = [str('k'.repeat(100_000)), put(0), b('0'), tensor('0', 1, 0, [1], [1]), put(1), put(2), b('0')];
  for (let i = 0; i < levels; i++) body.push(b('}', '(', get(0), get(2), str('t'), get(1), 'u', put(2), '0'));
  body.push(get(2));
  const long = writeCheckpoint('long-keys.pth', pickle(...body), storage);
  within(2000, 'the long keys', () => assert.throws(() => loadPth(long), (e: Error) => e instanceof PthError
    && /long-keys\.pth: expected the paths of the tensors to total at most \d+ characters but they reach \d+ at a path of \d+ characters \(long keys repeated through shared or deeply nested objects\)/.test(e.message)));
});
