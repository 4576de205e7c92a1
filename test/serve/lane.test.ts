// The shared-memory lane between the Encoder and its model thread, both ends
// driven from one thread here (the Encoder tests run it across threads).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Lane, LANE_INPUT_BYTES } from '../../lib/serve/lane';

test('a request goes in, is taken once, and its features come back; an answer by message leaves answer() null', async () => {
  const lane = Lane.create(4);
  const main = new Lane(lane.shared, 4); // the main thread's view of the same memory
  assert.equal(lane.take(), null, 'nothing to take yet');
  const sent = main.send(7, Uint8Array.from([1, 2, 3]));
  const taken = lane.take();
  assert.deepEqual(taken && { id: taken.id, bytes: Array.from(taken.bytes) }, { id: 7, bytes: [1, 2, 3] });
  assert.equal(lane.take(), null, 'taken once');
  lane.answerWith(Float32Array.from([0.5, -1, 2, 3]), 1.25);
  await sent;
  const answer = main.answer(7);
  assert.deepEqual(answer && { features: Array.from(answer.features), computeMs: answer.computeMs }, { features: [0.5, -1, 2, 3], computeMs: 1.25 });
  assert.equal(main.answer(6), null, 'another id');

  const second = main.send(8, new Uint8Array(LANE_INPUT_BYTES).fill(9));
  assert.equal(lane.take()?.bytes.length, LANE_INPUT_BYTES, 'the whole input');
  lane.answerByMessage();
  await second;
  assert.equal(main.answer(8), null, 'answered by message: the features are not in the lane');
});

test('across threads: the model thread, awake or asleep on the doorbell, answers 200 requests in order', async () => {
  const lane = Lane.create(2);
  // The other end, asleep on the doorbell between requests (the lane module by path: a worker of its own).
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads');
    const { Lane } = require(${JSON.stringify(require.resolve('../../lib/serve/lane'))});
    const lane = new Lane(workerData, 2);
    for (let served = 0; served < 200;) {
      const count = lane.rung();
      const r = lane.take();
      if (r === null) { lane.sleep(count, 1000); continue; }
      // Every third answer at once, the others after a short spin: both orders of take and wait.
      if (served % 3 !== 0) { const until = performance.now() + 0.2; while (performance.now() < until); }
      lane.answerWith(Float32Array.from([r.id, r.bytes.length]), served);
      served++;
    }`, { eval: true, workerData: lane.shared });
  try {
    for (let id = 1; id <= 200; id++) {
      await lane.send(id, new Uint8Array(id));
      assert.deepEqual(Array.from(lane.answer(id)!.features), [id, id]);
    }
  } finally {
    await worker.terminate();
  }
});
