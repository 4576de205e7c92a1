// The addon in worker threads: each worker has its own tensors, and a worker
// terminated in the middle of native work ends quietly. Run in a child process
// because the failure this guards against is an abort of the whole process.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const LIB = path.resolve(__dirname, '..', '..', 'lib');

const PROGRAM = `
const { Worker } = require('node:worker_threads');
const et = require(${JSON.stringify(LIB)});
const body = \`
  const et = require(${JSON.stringify(LIB)});
  const { parentPort } = require('node:worker_threads');
  parentPort.postMessage(et.ones([3]).mul(2).sum().item());
  // busy in native code when it is terminated
  for (;;) et.scope(() => et.randn([64, 64]).matmul(et.randn([64, 64])).relu().sum());
\`;
(async () => {
  for (let i = 0; i < 5; i++) {
    const w = new Worker(body, { eval: true });
    const first = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    if (first !== 6) throw new Error('worker computed ' + first);
    await new Promise((r) => setTimeout(r, 20 + 10 * i));
    await w.terminate();
  }
  // the main thread's own tensors are untouched by the workers' tables
  console.log('main ' + et.ones([2]).sum().item() + ' live ' + et.memory().liveTensors);
})().catch((e) => { console.error(e); process.exit(2); });
`;

test('workers run tensor ops on their own, and terminating one mid-work does not abort the process', () => {
  const r = spawnSync(process.execPath, ['-e', PROGRAM], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `the process was killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^main 2 live \d+$/m);
});
