// Inputs that used to crash the process inside the addon or libtorch. Each
// reproduction runs in a child process, so a regression fails its test with
// the child's signal instead of killing the test runner.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../../lib';

const LIB = path.resolve(__dirname, '..', '..', 'lib');

/** Runs `body` in a fresh Node with `et` (the library) and `native` in scope; returns its stdout. */
function runChild(body: string): string {
  const code = `const et = require(${JSON.stringify(LIB)});\n` +
    `const { native } = require(${JSON.stringify(path.join(LIB, 'native'))});\n${body}`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, `the child exited with ${r.status}: ${r.stderr}`);
  return r.stdout;
}

test('an array getter that calls other ops while aten converts the arguments cannot corrupt native state', () => {
  const out = runChild(`
    const x = et.randn([1, 1, 5, 5]);
    const w = et.randn([1, 1, 3, 3]);
    const stride = [1, 1];
    let reads = 0;
    Object.defineProperty(stride, 1, { get() {
      reads++;
      // boxed calls (convolution itself, re-entered), fast-path calls, new
      // tensors (the handle table grows) and a first lookup of an operator
      for (let i = 0; i < 100; i++) et.aten.add_Tensor(et.randn([8]), et.randn([8]));
      et.aten.convolution(x, w, null, [1, 1], [0, 0], [1, 1], false, [0, 0], 1);
      et.aten.logcumsumexp(et.randn([4]), 0);
      stride.push(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1); // the array grows while it is read
      return 1;
    } });
    const y = et.aten.convolution(x, w, null, stride, [0, 0], [1, 1], false, [0, 0], 1);
    const expected = et.aten.convolution(x, w, null, [1, 1], [0, 0], [1, 1], false, [0, 0], 1);
    console.log(JSON.stringify({ reads, shape: y.shape, same: y.sub(expected).abs().max().item() === 0 }));
  `);
  assert.deepEqual(JSON.parse(out), { reads: 1, shape: [1, 1, 3, 3], same: true });
});

test('float, scalar and tensor lists read by the addon survive getters that re-enter it', () => {
  const out = runChild(`
    const internal = require(${JSON.stringify(path.join(LIB, 'tensor', 'ops.internal.generated'))});
    const reenter = () => { for (let i = 0; i < 50; i++) et.aten.cumsum(et.randn([16]), 0); };
    const scales = [2, 2];
    Object.defineProperty(scales, 0, { get() { reenter(); scales.push(9, 9, 9, 9); return 2; } });
    const up = et.aten.upsample_nearest2d_vec(et.ones([1, 1, 2, 2]), null, scales);
    const xs = [et.ones([2]), et.ones([3])];
    const factors = [3, 4];
    Object.defineProperty(factors, 1, { get() { reenter(); factors.length = 0; return 4; } });
    internal._foreach_mul__ScalarList(xs, factors);
    // a tensor list handed to the addon directly (the typed wrappers copy it first)
    const a = et.ones([2]);
    const ids = [a.id, a.id];
    Object.defineProperty(ids, 0, { get() { reenter(); ids.push(a.id, a.id, a.id); return a.id; } });
    const catId = native.call(native.lookupOp('aten::cat', ''), ids, 0);
    console.log(JSON.stringify({ up: up.shape, xs: xs.map((t) => t.toArray()), cat: native.shape(catId) }));
  `);
  assert.deepEqual(JSON.parse(out), { up: [1, 1, 4, 4], xs: [[3, 3], [4, 4, 4]], cat: [4] });
});

test('internal operators that crash libtorch on bad input are not in et.aten', () => {
  const aten = et.aten as Record<string, unknown>;
  for (const name of ['_stack', '_foreach_copy', '_fft_r2c', '_foreach_mul__Scalar', '_fused_adamw_']) {
    assert.equal(aten[name], undefined, `et.aten.${name} should not be public`);
  }
  // Python's operator methods are ordinary public operators
  assert.equal(typeof aten.__and___Tensor, 'function');
  assert.equal(Object.keys(aten).filter((k) => k.startsWith('_') && !k.startsWith('__')).length, 0);
});

test('the public counterparts of the crashing internals give JS errors', () => {
  const out = runChild(`
    const errors = [];
    const attempt = (f) => { try { f(); errors.push(null); } catch (e) { errors.push(e.constructor.name + ': ' + e.message.split('\\n')[0]); } };
    attempt(() => et.aten.stack([], 0));
    attempt(() => et.aten.fft_rfftn(et.randn([3, 4]), null, [99, 2147483648]));
    attempt(() => et.aten.fft_rfftn(et.randn([3, 4]), [3, 2 ** 60]));
    attempt(() => et.aten.sum_dim_IntList(et.randn([3, 4]), [2 ** 53]));
    attempt(() => et.aten.sum_dim_IntList(et.randn([3, 4]), [-(2 ** 60)]));
    attempt(() => et.aten.view(et.randn([4]), [2147483648, 0]));
    console.log(JSON.stringify(errors));
  `);
  const errors = JSON.parse(out) as (string | null)[];
  assert.match(errors[0]!, /stack expects a non-empty TensorList/);
  assert.match(errors[1]!, /Dimension out of range/);
  assert.equal(errors[2], `RangeError: Expected an integer between -(2^53 - 1) and 2^53 - 1 for argument 's' of aten::fft_rfftn but received the number ${2 ** 60}`);
  assert.match(errors[3]!, /^RangeError: .* for argument 'dim' of aten::sum\.dim_IntList but received the number 9007199254740992$/);
  assert.match(errors[4]!, /^RangeError: /);
  assert.match(errors[5]!, /invalid for input of size 4/);
});

test('bigints outside int64 and non-integers are refused by name', () => {
  const x = et.randn([3, 4]);
  assert.throws(() => et.aten.sum_dim_IntList(x, [2n ** 64n as unknown as number]), { name: 'RangeError', message: /within int64 for argument 'dim' of aten::sum\.dim_IntList/ });
  assert.throws(() => et.aten.sum_dim_IntList(x, [1.5]), { name: 'TypeError', message: /Expected an integer for argument 'dim' of aten::sum\.dim_IntList but received the number 1\.5$/ });
  assert.throws(() => et.aten.sum_dim_IntList(x, [Infinity]), { name: 'TypeError', message: /received the number Infinity$/ });
  assert.deepEqual(et.aten.sum_dim_IntList(et.ones([3, 4]), [1n as unknown as number]).toArray(), [4, 4, 4]);
});

test('a second copy of the addon loads into a process that has one (another install of the package): its operators are registered once', () => {
  const root = path.resolve(__dirname, '..', '..', '..');
  const addon = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'extrema-addon-copy-'));
  try {
    const copy = path.join(dir, 'extrema.node');
    fs.copyFileSync(addon, copy);
    const out = runChild(`
      const second = { exports: {} };
      process.dlopen(second, ${JSON.stringify(copy)});
      const packed = et.packLinearWeight(et.randn([5, 8]));
      console.log(typeof second.exports.lookupOp, et.packedLinear(et.randn([2, 8]), packed, null).shape.join('x'));
    `);
    assert.equal(out.trim(), 'function 2x5');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
