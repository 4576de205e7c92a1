// Atomic writes and the clean-up of what a killed writer leaves behind: a
// child process is SIGKILLed in the middle of writeFileAtomic, its temporary
// file must survive while it lives and be removed once it is dead, and the
// target must keep its old content throughout.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, removeStaleTempFiles } from '../../lib/io/fs';
import { tmpDir } from '../helpers/oracle';

const FS_MODULE = path.join(__dirname, '..', '..', 'lib', 'io', 'fs.js');

/** A pid that is certainly not running: that of a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.equal(r.status, 0);
  return r.pid as number;
}

test('writeFileAtomic replaces the file whole and leaves no temporary file', () => {
  const dir = tmpDir();
  try {
    const file = path.join(dir, 'a.bin');
    writeFileAtomic(file, Buffer.from('first'));
    writeFileAtomic(file, Buffer.from('second, longer'));
    assert.equal(fs.readFileSync(file, 'utf8'), 'second, longer');
    assert.deepEqual(fs.readdirSync(dir), ['a.bin']);
    assert.throws(() => writeFileAtomic(path.join(dir, 'missing', 'b.bin'), Buffer.from('x')), /ENOENT/);
    assert.deepEqual(fs.readdirSync(dir), ['a.bin']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a writer killed with SIGKILL mid-write leaves a temporary file that is removed once it is dead', async () => {
  const dir = tmpDir();
  try {
    const target = path.join(dir, 'checkpoint.safetensors');
    writeFileAtomic(target, Buffer.from('the last good checkpoint'));
    // The child stops inside its first write(2) call's return and waits to be killed.
    const script = `
      const fs = require('node:fs');
      const write = fs.writeSync;
      fs.writeSync = function (...args) {
        const n = write.apply(this, args);
        process.stdout.write('paused\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
        return n;
      };
      require(${JSON.stringify(FS_MODULE)}).writeFileAtomic(${JSON.stringify(target)}, Buffer.alloc(8 << 20, 7));`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => (d.toString().includes('paused') ? resolve() : undefined));
      child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before pausing`)));
    });
    const temp = fs.readdirSync(dir).filter((n) => n !== 'checkpoint.safetensors');
    assert.equal(temp.length, 1);
    assert.match(temp[0] as string, new RegExp(`^\\.checkpoint\\.safetensors\\.${child.pid}\\.\\d+\\.tmp$`));
    assert.equal(fs.statSync(path.join(dir, temp[0] as string)).size, 8 << 20, 'the data is written, the rename is not');
    assert.deepEqual(removeStaleTempFiles(dir), [], 'a live writer keeps its temporary file');

    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    assert.deepEqual(fs.readdirSync(dir).sort(), [temp[0], 'checkpoint.safetensors'].sort(), 'kill -9 leaves the temporary file behind');
    assert.deepEqual(removeStaleTempFiles(dir), temp);
    assert.deepEqual(fs.readdirSync(dir), ['checkpoint.safetensors']);
    assert.equal(fs.readFileSync(target, 'utf8'), 'the last good checkpoint');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('removeStaleTempFiles removes dead, reused-pid and old temporary files only', async () => {
  const dir = tmpDir();
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => sleeper.on('spawn', resolve));
    const now = Date.now();
    const started = Math.floor(performance.timeOrigin);
    const dead = deadPid();
    const names = {
      dead: `.checkpoint.safetensors.${dead}.${now}.tmp`,
      ours: `.config.json.${process.pid}.${now}.tmp`,
      oursBeforeStart: `.loss.png.${process.pid}.${started - 60_000}.tmp`,
      alive: `.knn.png.${sleeper.pid}.${now}.tmp`,
      aliveButOld: `.lr.png.${sleeper.pid}.${now - 3 * 86_400_000}.tmp`,
    };
    const others = ['checkpoint.safetensors', '.foo.tmp', '.a.12.tmp', `.x.${dead}.${now}.tmp.bak`, `.y.0.${now}.tmp`];
    for (const n of [...Object.values(names), ...others]) fs.writeFileSync(path.join(dir, n), 'x');
    fs.mkdirSync(path.join(dir, `.folder.${dead}.${now}.tmp`));
    const threeDaysAgo = (now - 3 * 86_400_000) / 1000;
    fs.utimesSync(path.join(dir, names.aliveButOld), threeDaysAgo, threeDaysAgo);

    assert.deepEqual(removeStaleTempFiles(dir, { maxAgeMs: Infinity }), [names.dead, names.oursBeforeStart].sort());
    assert.deepEqual(removeStaleTempFiles(dir), [names.aliveButOld], 'a file untouched for a day is stale whoever holds the pid');
    assert.deepEqual(fs.readdirSync(dir).sort(), [names.ours, names.alive, ...others, `.folder.${dead}.${now}.tmp`].sort());
    assert.deepEqual(removeStaleTempFiles(dir), []);

    assert.deepEqual(removeStaleTempFiles(path.join(dir, 'no-such-run')), []);
    assert.throws(() => removeStaleTempFiles(dir, { maxAgeMs: -1 }), (e: Error) => e instanceof TypeError && /non-negative number of milliseconds for "maxAgeMs" of removeStaleTempFiles but received -1/.test(e.message));
    assert.throws(() => removeStaleTempFiles(''), /Expected a folder path for "dir" of removeStaleTempFiles but received an empty string/);
    assert.throws(() => removeStaleTempFiles(path.join(dir, 'checkpoint.safetensors')), /ENOTDIR/);
  } finally {
    sleeper.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
