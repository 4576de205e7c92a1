// `extrema pack`: the command packs, reports, and refuses bad options and an
// occupied folder with one clear line; what it writes is what `pretrain` and
// `embed` read (the dataset reader is tested in test/data/shards.test.ts).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset } from '../../lib/data';
import { tmpDir } from '../helpers/oracle';

const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const IDX = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');

function cli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test('extrema pack writes a pack the dataset reader opens, and refuses bad options and an occupied folder', async () => {
  const out = path.join(tmpDir(), 'pack');
  const r = cli(['pack', IDX, '--out', out, '--size', '32', '--shard-mb', '1', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /wrote 1000 images \(32 x 32 x 1\) in 1 shard to .*pack in [\d.]+ s/);
  const packed = openDataset(out, { size: 32 });
  const source = openDataset(IDX, { size: 32 });
  assert.deepEqual(await packed.read(999), await source.read(999), 'resized on packing exactly as on reading');
  assert.deepEqual(Array.from(packed.labels!), Array.from(source.labels!));
  const again = cli(['pack', IDX, '--out', out, '--quiet']);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds index\.json/);
  const bad = cli(['pack', IDX, '--out', path.join(out, 'x'), '--channels', '2']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /channels/);
  assert.ok(!fs.existsSync(path.join(out, 'x')), 'nothing written for a refused option');
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
});
