// The committed operator wrappers are what the generator makes from the
// libtorch this addon was built against.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { tmpDir } from '../helpers/oracle';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TENSOR_DIR = path.join(ROOT, 'lib', 'tensor');
const GENERATED = ['ops.generated.ts', 'ops.internal.generated.ts'];
const committed = fs.readFileSync(path.join(TENSOR_DIR, GENERATED[0]!), 'utf8');
const generatedFor = /libtorch\n\/\/ (\S+) reports/.exec(committed)?.[1];
const sameTorch = generatedFor === et.versions().torch;

test('lib/tensor/ops.generated.ts and ops.internal.generated.ts are up to date', { skip: sameTorch ? false : `generated for libtorch ${generatedFor}, built against ${et.versions().torch}` }, () => {
  const out = tmpDir();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'generate-ops.js'), '--out-dir', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const file of GENERATED) {
    assert.ok(fs.readFileSync(path.join(out, file), 'utf8') === fs.readFileSync(path.join(TENSOR_DIR, file), 'utf8'), `${file}: regenerate with: npm run generate:ops`);
  }
});
