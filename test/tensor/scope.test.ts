// What a scope keeps, and how it refuses asynchronous bodies.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as et from '../../lib';

const LIB = path.resolve(__dirname, '..', '..', 'lib');

test('an async body is refused before it runs and leaves nothing unhandled', () => {
  // In a child: an unhandled rejection would end it with a non-zero status.
  const code = `
    const et = require(${JSON.stringify(LIB)});
    let ran = 0;
    const messages = [];
    const attempt = (f) => { try { f(); } catch (e) { messages.push(e.constructor.name + ': ' + e.message); } };
    attempt(() => et.scope(async () => { ran++; await null; throw new Error('late failure'); }));
    attempt(() => et.scope(async function* () { ran++; }));
    const live = et.memory().liveTensors;
    // a plain function returning a promise: its tensors are freed, the rejection is handled
    attempt(() => et.scope(() => { et.ones([3]); return Promise.reject(new Error('rejected')); }));
    attempt(() => et.scope(() => ({ then(ok, fail) { setTimeout(() => fail(new Error('thenable')), 5); } })));
    setTimeout(() => console.log(JSON.stringify({ ran, messages, freed: et.memory().liveTensors === live })), 30);
  `;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  const { ran, messages, freed } = JSON.parse(r.stdout) as { ran: number; messages: string[]; freed: boolean };
  assert.equal(ran, 0);
  assert.equal(freed, true);
  assert.equal(messages.length, 4);
  for (const m of messages) assert.match(m, /^TypeError: scope\(\) takes a synchronous function/);
});

test('scope() refuses a non-function', () => {
  assert.throws(() => et.scope(3 as unknown as () => void), { name: 'TypeError', message: /Expected a function for scope\(\) but received number/ });
});

test('returned tensors survive at any depth, in Sets, Map keys and cycles', () => {
  const before = et.memory().liveTensors;
  const r = et.scope(() => {
    et.zeros([1]); // freed
    let deep: unknown = et.full([1], 1);
    for (let i = 0; i < 50; i++) deep = i % 2 === 0 ? [deep] : { next: deep };
    const cyclic: Record<string, unknown> = { set: new Set([et.full([1], 2)]), map: new Map([[et.full([1], 3), et.full([1], 4)]]) };
    cyclic.self = cyclic;
    const bare = Object.assign(Object.create(null) as object, { t: et.full([1], 5) });
    return { deep, cyclic, bare };
  });
  assert.equal(et.memory().liveTensors, before + 5);
  let deep: unknown = r.deep;
  while (!(deep instanceof et.Tensor)) deep = Array.isArray(deep) ? deep[0] : (deep as { next: unknown }).next;
  const set = r.cyclic.set as Set<et.Tensor>;
  const [[key, value]] = [...(r.cyclic.map as Map<et.Tensor, et.Tensor>)];
  const bare = (r.bare as { t: et.Tensor }).t;
  assert.deepEqual([deep.item(), [...set][0]!.item(), key!.item(), value!.item(), bare.item()], [1, 2, 3, 4, 5]);
  for (const t of [deep, ...set, key!, value!, bare]) t.dispose();
  assert.equal(et.memory().liveTensors, before);
});

test('tensors inside class instances are not kept unless keep()\'d (documented)', () => {
  class Holder {
    constructor(readonly loose: et.Tensor, readonly kept: et.Tensor) {}
  }
  const h = et.scope(() => new Holder(et.ones([2]), et.keep(et.ones([2]))));
  assert.equal(h.loose.isDisposed, true);
  assert.equal(h.kept.isDisposed, false);
  h.kept.dispose();
});
