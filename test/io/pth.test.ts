// .pth checkpoints: what loadPth returns is compared with what Python's
// torch.load sees (test/oracle/pth_oracle.py writes the fixtures in one run),
// tensor bytes bit-exactly; hostile pickles must stay inert; damaged and
// unsupported files must fail with a clear PthError and leak no tensors.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { loadPth, stateDictFromPth, flattenStateDict, PthError } from '../../lib/io/pth';
import {
  unpickle, PickleError, PickleObject, PickleGlobal, PickleOrderedDict, isPickleTuple, type PickleValue, type PickleDict,
} from '../../lib/io/pickle';
import { ZipArchive } from '../../lib/io/zip';
import { ORACLE_DIR, runPython, tmpDir } from '../helpers/oracle';

interface Report {
  fixtures: Record<string, unknown>;
  pickles: { protocol: number; hex: string; canon: unknown }[];
  cyclic_hex: string;
  metadata: unknown;
}

let dir = '';
let marker = '';
let report: Report;
let expected: Map<string, et.Tensor>;
const file = (name: string) => path.join(dir, name);

before(() => {
  dir = tmpDir('extrema-pth-');
  marker = path.join(dir, 'PWNED');
  report = JSON.parse(runPython(fs.readFileSync(path.join(ORACLE_DIR, 'pth_oracle.py'), 'utf8'), [dir, marker])) as Report;
  expected = et.loadSafetensors(file('expected.safetensors')).tensors;
});

after(() => {
  for (const t of expected.values()) t.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---- a tagged description of values, computed as pth_oracle.py's canon() --------

function num(v: number): unknown {
  if (Number.isNaN(v)) return { num: 'nan' };
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, v);
  return { num: Buffer.from(dv.buffer).toString('hex') };
}

function canon(v: PickleValue | undefined): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return { bool: v };
  if (typeof v === 'number') return num(v);
  if (typeof v === 'bigint') return { big: String(v) };
  if (typeof v === 'string') return { str: v };
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (v instanceof et.Tensor) return { tensor: v.dtype, shape: v.shape, requires_grad: v.requiresGrad };
  if (Array.isArray(v)) return { [isPickleTuple(v) ? 'tuple' : 'list']: (v as PickleValue[]).map(canon) };
  if (v instanceof Map) return { dict: [...v].map(([k, x]) => [canon(k), canon(x)]) };
  if (v instanceof Set) return { set: [...v].map(canon).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) };
  if (v instanceof PickleObject) return { obj: v.__class__, state: canon(v.state) };
  if (v instanceof PickleGlobal) return { global: v.qualifiedName };
  throw new Error(`unexpected value ${String(v)}`);
}

function bytesOf(t: et.Tensor): Buffer {
  const a = t.toTypedArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Every expected tensor of a fixture equals, byte for byte, the loaded one at the same path. */
function assertTensors(fixture: string, tensors: Map<string, et.Tensor>, rename: (k: string) => string | null = (k) => k): void {
  let n = 0;
  for (const [key, want] of expected) {
    if (!key.startsWith(`${fixture}::`)) continue;
    const p = rename(key.slice(fixture.length + 2));
    if (p === null) continue;
    const got = tensors.get(p);
    assert.ok(got, `${fixture}: tensor "${p}" is missing`);
    assert.equal(got.dtype, want.dtype, `${p} dtype`);
    assert.deepEqual(got.shape, want.shape, `${p} shape`);
    assert.ok(got.isContiguous, `${p} is contiguous`);
    assert.ok(bytesOf(got).equals(bytesOf(want)), `${p} bytes`);
    n++;
  }
  assert.ok(n > 0, `${fixture} has expected tensors`);
}

const live = () => et.memory().liveTensors;
const dictOf = (v: PickleValue | undefined): PickleDict => {
  assert.ok(v instanceof Map, 'a dict');
  return v;
};

// ---- 1. a training checkpoint ---------------------------------------------

test('an ExtreMA checkpoint loads as torch.load sees it, every tensor bit-exact', () => {
  const baseline = live();
  const ckpt = loadPth(file('ckpt.pth'));
  assert.deepEqual(canon(ckpt.object), report.fixtures.ckpt);
  assertTensors('ckpt', ckpt.tensors);
  assert.equal(ckpt.archiveName, 'ckpt');
  assert.equal(ckpt.version, '3');
  assert.equal(ckpt.byteorder, 'little');

  const top = dictOf(ckpt.object);
  assert.equal(top.get('epoch'), 3);
  assert.equal(top.get('arch'), 'vit_small');
  assert.equal(top.get('big'), 2n ** 70n);
  assert.equal(top.get('device'), 'cuda:1');
  // One Python tensor object referenced twice is one JS tensor.
  assert.equal(top.get('alias'), dictOf(top.get('state_dict')).get('module.base_encoder.cls_token'));

  const sd = top.get('state_dict');
  assert.ok(sd instanceof PickleOrderedDict);
  assert.deepEqual(canon(dictOf(sd.state as PickleValue).get('_metadata')), report.metadata);
  const shared = sd.get('module.shared.b') as et.Tensor;
  assert.deepEqual(shared.toArray(), [[2, 2.5, 3, 3.5, 4], [4.5, 5, 5.5, 6, 6.5]]);

  const args = top.get('args');
  assert.ok(args instanceof PickleObject);
  assert.equal(args.__class__, 'argparse.Namespace');
  assert.equal(args.get('lr'), 1.5e-4);
  assert.equal(args.get('arch'), 'vit_small');
  assert.equal(args.get('gpu'), null);
  assert.equal(args.get('multiprocessing_distributed'), true);
  assert.ok(isPickleTuple(args.get('betas')));
  assert.deepEqual(args.get('schedule'), [120, 160]);

  const optimizer = dictOf(top.get('optimizer'));
  const state = dictOf(optimizer.get('state'));
  assert.deepEqual([...state.keys()], [0, 1, 2, 3]);
  assert.equal((dictOf(state.get(0)).get('step') as et.Tensor).item(), 1);
  const groups = optimizer.get('param_groups') as PickleDict[];
  assert.equal(groups.length, 2);
  assert.deepEqual(groups.map((g) => g.get('params')), [[0], [1, 2, 3]]);
  assert.deepEqual(groups.map((g) => g.get('weight_decay')), [0.05, 0]);
  assert.deepEqual(groups[0]?.get('betas'), Object.freeze([0.9, 0.95]));
  assert.equal(groups[0]?.get('lr'), 1.5e-4);

  ckpt.dispose();
  assert.equal(live(), baseline, 'dispose() frees every tensor');
});

test('ZIP64, deflated and big-endian copies of the checkpoint load identically', () => {
  for (const name of ['ckpt_zip64.pth', 'ckpt_deflate.pth', 'ckpt_big.pth']) {
    const ckpt = loadPth(file(name), { device: 'cpu' });
    assert.deepEqual(canon(ckpt.object), report.fixtures.ckpt, name);
    assertTensors('ckpt', ckpt.tensors);
    assert.equal(ckpt.byteorder, name === 'ckpt_big.pth' ? 'big' : 'little');
    ckpt.dispose();
  }
  const zip = ZipArchive.open(file('ckpt_zip64.pth'));
  assert.equal(zip.entry('ckpt/byteorder')?.size, 6);
  assert.equal(zip.read('ckpt/byteorder').toString(), 'little');
  zip.close();
});

test('stateDictFromPth returns the state dict in order and frees the rest', () => {
  const baseline = live();
  const sd = stateDictFromPth(file('ckpt.pth'), { stripPrefix: 'module.' });
  const names = (report.fixtures.ckpt as { dict: [{ str: string }, { dict: [{ str: string }, unknown][] }][] }).dict
    .find(([k]) => k.str === 'state_dict')![1].dict.map(([k]) => k.str.replace(/^module\./, ''));
  assert.deepEqual([...sd.keys()], names);
  assertTensors('ckpt', sd, (k) => (k.startsWith('state_dict.module.') ? k.slice('state_dict.module.'.length) : null));
  assert.equal(live(), baseline + sd.size, 'only the state dict stays alive');
  for (const t of sd.values()) t.dispose();

  const exp = stateDictFromPth(file('ckpt.pth'), { key: 'optimizer.state' });
  assert.deepEqual([...exp.keys()].slice(0, 3), ['0.step', '0.exp_avg', '0.exp_avg_sq']);
  for (const t of exp.values()) t.dispose();
  assert.throws(() => stateDictFromPth(file('ckpt.pth'), { key: 'model' }), (e: Error) => e instanceof PthError && /Expected a key "model" in PyTorch checkpoint .*ckpt\.pth but it has the keys "epoch", "arch"/.test(e.message));
  assert.equal(live(), baseline);
});

// ---- 2. parameters ---------------------------------------------------------

test('nn.Parameter: state_dict(), a parameter list, and a whole pickled module', () => {
  const baseline = live();
  for (const name of ['params_sd', 'params_list']) {
    const ckpt = loadPth(file(`${name}.pth`));
    assert.deepEqual(canon(ckpt.object), report.fixtures[name], name);
    assertTensors(name, ckpt.tensors);
    ckpt.dispose();
  }
  const list = loadPth(file('params_list.pth'));
  assert.deepEqual((list.object as et.Tensor[]).map((t) => t.requiresGrad), [true, true, true, false]);
  list.dispose();

  // torch.save(module): the classes are placeholders, the parameters real tensors.
  const mod = loadPth(file('module.pth'));
  assert.ok(mod.object instanceof PickleObject);
  assert.equal(mod.object.__class__, 'torch.nn.modules.container.Sequential');
  assertTensors('module_sd', mod.tensors, (k) => k.replace(/^(\d+)\.(\w+)$/, '_modules.$1._parameters.$2'));
  mod.dispose();
  assert.throws(() => loadPth(file('module.pth'), { strict: true }), (e: Error) => e instanceof PthError && /strict mode.*torch\.nn\.modules\.container\.Sequential/.test(e.message));
  assert.equal(live(), baseline);
});

test('a tensor view into a crafted storage is rebuilt like torch.load', () => {
  const ckpt = loadPth(file('crafted_ok.pth'), { strict: true });
  assert.deepEqual(canon(ckpt.object), report.fixtures.crafted_ok);
  assertTensors('crafted_ok', ckpt.tensors);
  ckpt.dispose();
});

// ---- 3. hostile pickles ----------------------------------------------------

test('a pickle that calls os.system loads as an inert placeholder, or throws in strict mode', () => {
  const baseline = live();
  const ckpt = loadPth(file('evil.pth'));
  assert.equal(fs.existsSync(marker), false, 'nothing ran');
  const payload = dictOf(ckpt.object).get('payload');
  assert.ok(payload instanceof PickleObject);
  assert.match(payload.__class__, /^(posix|os)\.system$/);
  assert.deepEqual(payload.args, [`touch ${marker}`]);
  assert.deepEqual((ckpt.tensors.get('model.w') as et.Tensor).toArray(), [1, 1]);
  ckpt.dispose();
  assert.throws(() => loadPth(file('evil.pth'), { strict: true }), (e: Error) => e instanceof PthError && e.cause instanceof PickleError && /(posix|os)\.system/.test(e.message) && /strict mode/.test(e.message));
  assert.equal(fs.existsSync(marker), false);
  assert.equal(live(), baseline);
});

test('code-running globals and opcodes stay inert in the unpickler', () => {
  const p = (s: string) => Buffer.from(s, 'latin1');
  const cases: [string, string, unknown[]][] = [
    ["cbuiltins\neval\n(S'1+1'\ntR.", 'builtins.eval', ['1+1']],
    ["c__builtin__\nexec\n(S'import os'\ntR.", 'builtins.exec', ['import os']],
    ["(S'touch x'\nios\nsystem\n.", 'os.system', ['touch x']],
    ["(csubprocess\nPopen\nS'ls'\no.", 'subprocess.Popen', ['ls']],
    ["cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR.", 'builtins.getattr', [{ global: 'builtins.object' }, { str: 'x' }]],
    ['\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.', 'os.system', ['id']],
  ];
  for (const [src, cls, args] of cases) {
    const v = unpickle(p(src));
    assert.ok(v instanceof PickleObject, cls);
    assert.equal(v.__class__, cls);
    assert.deepEqual(cls === 'builtins.getattr' ? v.args.map(canon) : v.args, args);
    assert.throws(() => unpickle(p(src), { strict: true }), (e: Error) => e instanceof PickleError && e.message.includes(cls) && /strict mode/.test(e.message), cls);
  }
  // Calling a placeholder makes another placeholder.
  const chained = unpickle(p("cos\nsystem\n(S'a'\ntR(tR."));
  assert.ok(chained instanceof PickleObject && chained.__class__ === 'os.system.__call__');

  const bad: [string, RegExp][] = [
    ['\x82\x01.', /EXT code 1, which is not supported/],
    ['\x97.', /out-of-band buffer/],
    ['\xff', /expected a pickle opcode but received byte 0xff/],
    ['h\x05.', /memo entry 5/],
    ['\x8e\xff\xff\xff\xff\xff\xff\xff\x7f', /length field says/],
    ['X\x00\x00\x00\x10abc', /expected 268435456 bytes for BINUNICODE but only 3 remain \(truncated pickle\)/],
    ['K\x01', /expected a STOP opcode .*truncated pickle/],
    ['Q.', /expected a value on the stack for BINPERSID/],
    ['K\x01Q.', /no persistent_load/],
    ['\x80\x09.', /protocol 0\.\.5 but received 9/],
    ['K\x01(K\x01K\x02u.', /expected a dict for SETITEMS but received the number 1/],
    ['e.', /expected a MARK before APPENDS/],
    ['K\x01)\x81.', /expected a class or function for NEWOBJ but received the number 1/],
    ["S'abc\n.", /quoted string/],
    ['X\x02\x00\x00\x00\xc3\x28.', /not valid UTF-8/],
    ['I12x\n.', /expected an integer for INT/],
    [`L${'9'.repeat(5000)}L\n.`, /at most 4300 digits/],
  ];
  for (const [src, pattern] of bad) {
    assert.throws(() => unpickle(p(src), { source: 'x.pkl' }), (e: Error) => e instanceof PickleError && pattern.test(e.message) && /x\.pkl at byte \d+/.test(e.message), JSON.stringify(src));
  }
  assert.throws(() => unpickle(p(`(${'K\x01'.repeat(20)}l.`), { maxStack: 10 }), /the stack exceeds 10 items/);
  assert.throws(() => unpickle(p(`${'K\x01\x94'.repeat(20)}.`), { maxMemo: 10 }), /the memo exceeds 10 entries/);
});

// ---- 4. damaged files ------------------------------------------------------

test('truncated, corrupt and inconsistent files fail with a clear PthError and leak nothing', () => {
  const baseline = live();
  const good = fs.readFileSync(file('ckpt.pth'));
  const write = (name: string, bytes: Uint8Array) => {
    fs.writeFileSync(file(name), bytes);
    return file(name);
  };
  const zip = ZipArchive.fromBuffer(good);
  const storage = zip.entry('ckpt/data/0')!;
  const at = zip.dataOffset(storage);
  const flipped = Buffer.from(good);
  flipped[at + 3] ^= 0x40;
  const badSig = Buffer.from(good);
  badSig[good.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]))] = 0x51;
  const cases: [string, string, RegExp][] = [
    ['half of the file', write('half.pth', good.subarray(0, good.length >> 1)), /Invalid zip archive .*half\.pth: expected an end-of-central-directory record .*truncated file/],
    ['one byte short', write('short.pth', good.subarray(0, good.length - 1)), /end-of-central-directory record/],
    ['empty file', write('empty.pth', new Uint8Array(0)), /expected at least 22 bytes .* but the file has 0/],
    ['not a zip', write('text.pth', Buffer.from('hello world, this is not a checkpoint at all\n'.repeat(4))), /text\.pth: expected an end-of-central-directory record .*not a zip archive/],
    ['missing file', file('nope.pth'), /Cannot read PyTorch checkpoint .*nope\.pth: ENOENT/],
    ['a directory', dir, /Cannot read PyTorch checkpoint .*EISDIR/],
    ['no data.pkl', file('no_pkl.pth'), /no_pkl\.pth: expected a record "<name>\/data\.pkl" but the archive has none \(3 entries: archive\/byteorder/],
    ['missing storage', file('missing_key.pth'), /missing_key\.pth: expected a record "archive\/data\/9" for storage key "9" but the archive has none/],
    ['view past the storage', file('view_past.pth'), /view_past\.pth: expected the tensor \(offset 2, size \[3\], stride \[1\]\) to fit in storage "0" of 4 float32 elements but it needs 5/],
    ['storage of the wrong size', file('wrong_size.pth'), /expected 16 bytes \(4 x float32\) in record "archive\/data\/0" but received 12/],
    ['truncated pickle', file('trunc_pickle.pth'), /Invalid pickle .*trunc_pickle\.pth:archive\/data\.pkl at byte \d+: .*truncated pickle/],
    ['flipped storage byte', write('flipped.pth', flipped), /entry "ckpt\/data\/0": expected CRC-32 0x[0-9a-f]{8} but the data has 0x[0-9a-f]{8} \(corrupt file\)/],
    ['bad central directory', write('badsig.pth', badSig), /local header signature|central directory entry signature/],
    ['legacy format', file('legacy.pth'), /Unsupported PyTorch checkpoint .*legacy\.pth: it is in the legacy torch\.save format \(PyTorch < 1\.6, or _use_new_zipfile_serialization=False\)/],
    ['plain pickle', file('plain.pkl'), /plain pickle, not a torch\.save zip archive/],
    ['TorchScript', file('script.pt'), /TorchScript archive \(torch\.jit\.save\)/],
  ];
  for (const [what, f, pattern] of cases) {
    assert.throws(() => loadPth(f), (e: Error) => {
      assert.ok(e instanceof PthError, `${what}: ${e.name}: ${e.message}`);
      assert.match(e.message, pattern, what);
      return true;
    }, what);
  }
  // Checksums can be skipped for speed: the flipped byte then loads as data.
  const unchecked = loadPth(file('flipped.pth'), { verifyChecksums: false });
  unchecked.dispose();
  assert.throws(() => loadPth(file('ckpt.pth'), { device: 'gpu0' as et.Device }), /Expected a device/);
  assert.equal(live(), baseline, 'failed loads dispose what they created');
});

// ---- pickles of plain data, every protocol ---------------------------------

test('plain-data pickles of protocols 0-5 unpickle as Python sees them', () => {
  for (const { protocol, hex, canon: want } of report.pickles) {
    const v = unpickle(Buffer.from(hex, 'hex'));
    assert.deepEqual(canon(v), want, `protocol ${protocol}`);
    const d = dictOf(v);
    const shared = d.get('shared') as PickleValue[][];
    assert.equal(shared[0], shared[1], `protocol ${protocol}: the memo shares objects`);
    assert.equal((d.get('ns') as PickleObject).get('a'), 1);
  }
  const cyclic = unpickle(Buffer.from(report.cyclic_hex, 'hex')) as PickleValue[];
  assert.equal(cyclic[0], cyclic);
  // Python 2 str opcodes, which Python 3 no longer writes.
  const py2 = unpickle(Buffer.from("(S'a\\n\\x41\\'\\\\'\nT\x02\x00\x00\x00hiU\x01!I01\nI00\nF-1.5e3\nL-12L\nt.", 'latin1'));
  assert.deepEqual(py2, ["a\nA'\\", 'hi', '!', true, false, -1500, -12]);
});

test('flattenStateDict walks dicts, lists, objects and placeholders', () => {
  const a = et.ones([1]);
  const b = et.zeros([2]);
  const nested: PickleDict = new Map<PickleValue, PickleValue>([['enc', new Map<PickleValue, PickleValue>([['w', a], [0, [b, 'skip', null]]])], ['n', 3]]);
  assert.deepEqual([...flattenStateDict(nested).entries()], [['enc.w', a], ['enc.0.0', b]]);
  assert.deepEqual([...flattenStateDict({ x: { y: a } }, 'p').keys()], ['p.x.y']);
  assert.deepEqual([...flattenStateDict(a, 'only').keys()], ['only']);
  assert.throws(() => flattenStateDict(new Map<PickleValue, PickleValue>([['a.b', a], ['a', new Map<PickleValue, PickleValue>([['b', b]])]])), /"a\.b" occurs twice/);
  a.dispose();
  b.dispose();
});
