// The batched loss read-back of the training loops: values exact and in order,
// one record each, nothing left alive.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { PendingLosses } from '../../lib/train/loss-readback';

test('pending losses are read in order, exactly as item() reads them, and freed', () => {
  const before = et.memory().liveTensors;
  const pending = new PendingLosses<{ step: number }>(3);
  const values = [0.1, 2.5e-8, Number.NaN];
  const expected: number[] = [];
  values.forEach((v, i) => {
    et.scope(() => {
      const loss = et.tensor([v]).mul(3).sum(); // a float32 scalar with a graph behind it
      expected.push(loss.item());
      pending.push(loss, { step: i + 1 });
      assert.equal(pending.due, i === 2);
    });
  });
  assert.equal(pending.size, 3);
  const read = pending.take();
  assert.deepEqual(read.map((r) => r.record.step), [1, 2, 3]);
  assert.deepEqual(read.map((r) => r.loss), expected);
  assert.equal(pending.size, 0);
  assert.deepEqual(pending.take(), []);
  et.scope(() => pending.push(et.tensor([1 / 3], { dtype: 'float64' }).sum(), { step: 4 }));
  assert.equal(pending.take()[0]!.loss, 1 / 3, 'float64 losses keep their precision');
  assert.equal(et.memory().liveTensors, before, 'no tensor left alive');
  assert.throws(() => new PendingLosses(0), /positive integer for the loss read-back interval but received 0/);
});
