// `extrema launch` as a command: its flags are checked, and a launcher told
// to stop (SIGTERM from a scheduler) stops its ranks instead of orphaning them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { tmpDir } from '../helpers/oracle';
import { freePort } from '../helpers/net';

const CLI = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const skip = et.distributed.available().gloo ? false : 'this build has no torch.distributed';

test('extrema launch: bad flags are one clear line and exit code 1', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'launch', ...args], { encoding: 'utf8' });
  let r = run('--nproc-per-node', '0', '--', 'pretrain');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nproc/i);
  r = run('--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '2', '--', 'pretrain');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--node-rank below --nnodes \(2\) but received 2/);
  r = run('--nproc-per-node', '2');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /missing required argument 'command'/);
});

test('SIGTERM to the launcher stops every rank and the launcher exits non-zero', { skip, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  try {
    const child = spawn(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'pretrain', '--preset', 'demo', '--epochs', '50', '--knn-every', '0', '--threads', '1', '--quiet', '--out', path.join(dir, 'run')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const started = new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/steps per epoch/.test(stderr)) resolve();
    }));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await started;
    child.kill('SIGTERM');
    const code = await exited;
    assert.notEqual(code, 0);
    const pids = /SIGTERM received; passing it to the ranks still running \(pids (\d+), (\d+)\)/.exec(stderr)?.slice(1).map(Number) ?? [];
    assert.equal(pids.length, 2, stderr);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `rank process ${pid} is still alive`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
