// Data parallelism is exact: 2 ranks each on half of every batch, with
// gradients averaged, train the same weights as 1 process on the whole batch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { spawnRanks } from './spawn-ranks';

const skip = et.distributed.available().gloo ? false : 'this build has no torch.distributed';

for (const mode of ['overlap', 'after']) test(`2 ranks x batch 8 give the loss curve and weights of 1 process x batch 16 (all-reduce ${mode === 'overlap' ? 'during backward, c10d\'s Reducer' : 'after backward'})`, { skip, timeout: 120_000 }, async () => {
  const [two, one] = [await spawnRanks('ddp', 2, { DDP_MODE: mode }), await spawnRanks('ddp', 1)];
  for (const e of [...two, ...one]) assert.equal(e.code, 0, `rank ${e.rank} failed: ${e.stderr}`);
  const single = one[0]!.result! as { losses: number[]; params: number[][] };
  for (const e of two) {
    const r = e.result! as { losses: number[]; params: number[][]; buckets: number };
    assert.ok(r.buckets > 1, 'the test should cover several buckets');
    assert.equal(r.losses.length, single.losses.length);
    r.losses.forEach((l, i) => assert.ok(Math.abs(l - single.losses[i]!) <= 1e-5 * Math.abs(single.losses[i]!) + 1e-6, `step ${i}: loss ${l} vs ${single.losses[i]}`));
    r.params.forEach((p, i) => p.forEach((v, k) => assert.ok(Math.abs(v - single.params[i]![k]!) <= 1e-5, `parameter ${i}[${k}]: ${v} vs ${single.params[i]![k]}`)));
  }
  // the curve moved: the comparison is of a real training run
  assert.ok(single.losses.at(-1)! < single.losses[0]! - 0.05, `loss ${single.losses[0]} -> ${single.losses.at(-1)}`);
});
