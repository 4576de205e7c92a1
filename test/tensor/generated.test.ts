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
const committed = fs.readFileSync(path.join(ROOT, 'lib', 'tensor', 'ops.generated.ts'), 'utf8');
const generatedFor = /libtorch\n\/\/ (\S+) reports/.exec(committed)?.[1];
const sameTorch = generatedFor === et.versions().torch;

test('lib/tensor/ops.generated.ts is up to date', { skip: sameTorch ? false : `generated for libtorch ${generatedFor}, built against ${et.versions().torch}` }, () => {
  const out = path.join(tmpDir(), 'ops.ts');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'generate-ops.js'), '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(out, 'utf8') === committed, 'regenerate with: npm run generate:ops');
});
