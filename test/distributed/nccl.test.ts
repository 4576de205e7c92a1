// NCCL on CUDA tensors: the collectives give the values worked out for every
// rank, the Reducer all-reduces CUDA gradients through the group, and data
// parallelism over NCCL trains the weights of one process (2+ GPUs). Runs
// only where this addon was built with NCCL and a GPU is present (the lent
// GPU machine: scripts/device/cuda-check.sh); NCCL takes one GPU per rank,
// so on one GPU the multi-process cases run as a world of 1.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { GradientReducer } from '../../lib/runtime/gradient-reducer';
import { spawnRanks } from './spawn-ranks';
import { assertCollectives } from './expect-collectives';
import { freePort } from '../helpers/net';

const { available } = et.distributed;
const skip = !available().nccl ? 'this build has no NCCL' : !et.cuda.isAvailable() ? 'no CUDA device' : false;
const ranks = () => Math.min(et.cuda.deviceCount(), 2);
const CUDA = { TEST_DEVICE: 'cuda' }; // rank-worker.ts then asks for backend 'nccl'

test('NCCL collectives on CUDA tensors give every rank the expected values for each dtype', { skip, timeout: 180_000 }, async () => {
  const size = ranks();
  assertCollectives(await spawnRanks('collectives', size, CUDA), size, { onHostThreads: false });
});

test('c10d\'s Reducer all-reduces CUDA gradients through the group\'s NCCL backend during backward', { skip, timeout: 60_000 }, async () => {
  const g = await et.distributed.ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: await freePort(), timeoutMs: 30_000, backend: 'nccl' });
  try {
    assert.equal(g.nccl, true);
    const gen = et.Generator.create(3);
    const make = () => new et.nn.Sequential(new et.nn.Linear(8, 16, { generator: et.Generator.create(1) }), new et.nn.GELU(), new et.nn.Linear(16, 2, { generator: et.Generator.create(2) })).to('cuda:0');
    const x = et.randn([32, 8], { generator: gen }).to({ device: 'cuda:0' });
    const grads = (reduce: boolean) => {
      const model = make();
      const params = model.parameters();
      const reducer = reduce ? new GradientReducer(g, params, { bucketBytes: 256, firstBucketBytes: 128 }) : null;
      if (reducer !== null) assert.ok(reducer.buckets > 1, 'the test should cover several buckets');
      reducer?.prepareForBackward();
      et.scope(() => model.forward(x).square().mean().backward());
      const out = params.map((p) => Array.from(p.grad!.toTypedArray(), Number));
      reducer?.dispose();
      model.dispose();
      return out;
    };
    // a world of 1 averages over itself: the reduced gradients are the local ones
    assert.deepEqual(grads(true), grads(false));
  } finally {
    g.destroy();
  }
});

test('a group without NCCL refuses CUDA tensors and parameters with the reason', { skip }, async () => {
  const g = await et.distributed.ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: await freePort(), timeoutMs: 10_000, backend: 'gloo' });
  try {
    const t = et.ones([4], { device: 'cuda:0' });
    await assert.rejects(g.allReduce(t), /Expected a CPU tensor for the all-reduce tensor but received one on cuda:0: this group has Gloo alone \(initialise it with backend "nccl"/);
    const p = et.ones([4], { device: 'cuda:0' }).requiresGrad_(true);
    assert.throws(() => new GradientReducer(g, [p]), /Expected CPU parameters for a group without NCCL but received cuda:0 ones/);
  } finally {
    g.destroy();
  }
});

test('2 ranks x batch 8 over NCCL give the loss curve and weights of 1 process x batch 16', { skip: skip || (et.cuda.deviceCount() < 2 ? 'NCCL needs a GPU per rank: fewer than 2 GPUs' : false), timeout: 180_000 }, async () => {
  const [two, one] = [await spawnRanks('ddp', 2, CUDA), await spawnRanks('ddp', 1, CUDA)];
  for (const e of [...two, ...one]) assert.equal(e.code, 0, `rank ${e.rank} failed: ${e.stderr}`);
  const single = one[0]!.result! as { losses: number[]; params: number[][] };
  for (const e of two) {
    const r = e.result! as { losses: number[]; params: number[][] };
    r.losses.forEach((l, i) => assert.ok(Math.abs(l - single.losses[i]!) <= 1e-5 * Math.abs(single.losses[i]!) + 1e-6, `step ${i}: loss ${l} vs ${single.losses[i]}`));
    r.params.forEach((p, i) => p.forEach((v, k) => assert.ok(Math.abs(v - single.params[i]![k]!) <= 1e-5, `parameter ${i}[${k}]: ${v} vs ${single.params[i]![k]}`)));
  }
});
