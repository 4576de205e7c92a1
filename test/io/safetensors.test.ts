// safetensors: every dtype both ways with the Python `safetensors` package,
// metadata, atomic writes, and rejection of malformed files.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { runPython, tmpDir } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

function sample(): Record<string, et.Tensor> {
  const base = et.tensor([[-1.5, 0, 2.25], [3, 100, -7]], { dtype: 'float64' });
  const out: Record<string, et.Tensor> = {};
  for (const d of et.DTYPES) out[`t_${d}`] = base.to(d);
  out.scalar = et.scalarTensor(4.5);
  out.empty = et.zeros([0, 3]);
  out.view = et.arange(12).reshape(3, 4).t();
  return out;
}

test('our files load in Python with identical values, dtypes and metadata', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'ours.safetensors');
  const tensors = sample();
  et.saveSafetensors(file, tensors, { config: '{"width":192}', note: 'hello' });
  const report = JSON.parse(runPython(`
import json, sys
from safetensors import safe_open
with safe_open(sys.argv[1], 'pt') as f:
    meta = f.metadata()
    out = {k: {'dtype': str(f.get_tensor(k).dtype), 'shape': list(f.get_tensor(k).shape), 'values': f.get_tensor(k).double().flatten().tolist()} for k in f.keys()}
print(json.dumps({'meta': meta, 'tensors': out}))
`, [file]));
  assert.deepEqual(report.meta, { config: '{"width":192}', note: 'hello' });
  for (const [k, t] of Object.entries(tensors)) {
    const r = report.tensors[k];
    assert.ok(r, `python sees ${k}`);
    assert.equal(r.dtype, `torch.${t.dtype}`, `${k} dtype`);
    assert.deepEqual(r.shape, t.shape, `${k} shape`);
    assert.deepEqual(r.values, (t.to('float64').toTypedArray() as Float64Array).length ? Array.from(t.to('float64').contiguous().toTypedArray() as Float64Array) : [], `${k} values`);
  }
  fs.rmSync(dir, { recursive: true });
});

test('files written by Python load here', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'py.safetensors');
  runPython(`
import sys, torch
from safetensors.torch import save_file
torch.manual_seed(3)
t = {d: (torch.randn(3, 5) * 50).to(getattr(torch, d)) for d in ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool', 'int8', 'int16']}
save_file(t, sys.argv[1], metadata={'format': 'pt'})
save_file({k + '_copy': v.float() for k, v in t.items()}, sys.argv[1] + '.f32')
`, [file]);
  const { tensors, metadata } = et.loadSafetensors(file);
  const copies = et.loadSafetensors(file + '.f32').tensors;
  assert.deepEqual(metadata, { format: 'pt' });
  assert.equal(tensors.size, 10);
  for (const [k, t] of tensors) {
    assert.equal(t.dtype, k);
    assertClose(t.to('float32'), copies.get(`${k}_copy`)!, k, { atol: 0, rtol: 0 });
  }
  fs.rmSync(dir, { recursive: true });
});

test('writes are atomic: no temp file remains and a failed write keeps the old file', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'ckpt.safetensors');
  et.saveSafetensors(file, { a: et.ones([2]) });
  assert.deepEqual(fs.readdirSync(dir), ['ckpt.safetensors']);
  const before = fs.readFileSync(file);
  assert.throws(() => et.saveSafetensors(file, { a: et.ones([2]), b: 'oops' as unknown as et.Tensor }), /Expected a Tensor for "b"/);
  assert.throws(() => et.saveSafetensors(path.join(dir, 'missing', 'x.safetensors'), { a: et.ones([1]) }), /ENOENT/);
  assert.deepEqual(fs.readFileSync(file), before);
  assert.deepEqual(fs.readdirSync(dir), ['ckpt.safetensors']);
  fs.rmSync(dir, { recursive: true });
});

test('malformed and truncated files are rejected with a clear error', () => {
  const good = et.serializeSafetensors({ a: et.ones([4]), b: et.zeros([2], { dtype: 'int64' }) }, { k: 'v' });
  const header = (json: string) => {
    const h = Buffer.from(json);
    const p = Buffer.alloc(8);
    p.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([p, h]);
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['too short', good.subarray(0, 5), /fewer than the 8-byte header length/],
    ['truncated data', good.subarray(0, good.length - 3), /truncated|trailing|ends at byte/],
    ['truncated header', good.subarray(0, 20), /exceeds the file/],
    ['not JSON', Buffer.concat([header('{not json}')]), /not valid JSON/],
    ['array header', header('[1,2]'), /not a JSON object/],
    ['bad dtype', Buffer.concat([header('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}'), Buffer.alloc(16)]), /unsupported dtype "F128"/],
    ['size mismatch', Buffer.concat([header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}'), Buffer.alloc(8)]), /has 8 bytes but shape \[3\] float32 needs 12/],
    ['overlap', Buffer.concat([header('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'), Buffer.alloc(12)]), /overlapping or gapped/],
    ['trailing bytes', Buffer.concat([header('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'), Buffer.alloc(9)]), /trailing bytes/],
    ['negative shape', Buffer.concat([header('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}'), Buffer.alloc(4)]), /invalid shape/],
    ['bad metadata', header('{"__metadata__":{"a":1}}'), /metadata "a" is not a string/],
    ['huge header length', Buffer.from([255, 255, 255, 255, 255, 255, 255, 127, 0, 0]), /exceeds the file/],
  ];
  for (const [what, bytes, pattern] of cases) {
    assert.throws(() => et.parseSafetensors(bytes, what), (e: Error) => e instanceof et.SafetensorsError && pattern.test(e.message), what);
  }
  assert.equal(et.parseSafetensors(good).tensors.size, 2);
  assert.throws(() => et.loadSafetensors('/nonexistent/file.safetensors'), /Cannot read safetensors file/);
});
