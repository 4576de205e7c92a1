// Collectives across real processes (Gloo over TCP on this machine), checked
// against values worked out here for every rank; and what a rank sees when
// another one dies.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { spawnRanks } from './spawn-ranks';
import { assertCollectives } from './expect-collectives';
import { freePort } from '../helpers/net';
import { GradientReducer } from '../../lib/runtime/gradient-reducer';

const skip = et.distributed.available().gloo ? false : 'this build has no torch.distributed';

for (const size of [2, 3]) {
  test(`${size} ranks: all-reduce (sum, max, min, product, avg), broadcast, all-gather and reduce-scatter give every rank the expected values for each dtype`, { skip, timeout: 120_000 }, async () => {
    assertCollectives(await spawnRanks('collectives', size), size, { onHostThreads: true });
  });
}

test('a rank that dies makes the others fail with an error instead of hanging', { skip, timeout: 120_000 }, async () => {
  const exits = await spawnRanks('die', 2, { TEST_TIMEOUT_MS: '30000' });
  assert.equal(exits[1]!.code, 3);
  const survivor = exits[0]!;
  assert.equal(survivor.code, 0, survivor.stderr);
  assert.equal(typeof survivor.result!.error, 'string', 'rank 0 finished every all-reduce although rank 1 was gone');
  assert.match(survivor.result!.error as string, /^all-reduce failed on rank 0 of 2 \(another rank has probably died or stalled; its own output says why\): .*Connection (closed|reset) by peer/);
  // well before the 30 s collective timeout: a closed connection is noticed at once
  assert.ok((survivor.result!.seconds as number) < 25, `rank 0 waited ${survivor.result!.seconds} s`);
});

test('init refuses a bad world description with errors naming the variable or option', { skip }, async () => {
  const { ProcessGroup, worldFromEnv } = et.distributed;
  assert.equal(worldFromEnv({}), null);
  assert.throws(() => worldFromEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_PORT: '29500' }), /integer in \[0, 1\] for the environment variable RANK but received "2"/);
  assert.throws(() => worldFromEnv({ WORLD_SIZE: '2', RANK: '0' }), /MASTER_PORT but received nothing/);
  assert.throws(() => worldFromEnv({ WORLD_SIZE: 'two', RANK: '0', MASTER_PORT: '1' }), /WORLD_SIZE but received "two"/);
  assert.deepEqual(worldFromEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29500', TORCHELASTIC_USE_AGENT_STORE: 'True' }),
    { rank: 3, worldSize: 4, localRank: 1, masterAddr: 'node0', masterPort: 29500, agentStore: true });
  // a bare "cuda" is the rank's own GPU; an explicit device stays
  assert.deepEqual([et.distributed.rankDevice('cuda', 3), et.distributed.rankDevice('cuda:0', 3), et.distributed.rankDevice('cpu', 1)], ['cuda:3', 'cuda:0', 'cpu']);
  await assert.rejects(ProcessGroup.init({ worldSize: 2, rank: 5, masterPort: 1 }), /"rank"/);
  // nobody serves the store: the connection attempt gives up after the timeout with an error
  await assert.rejects(ProcessGroup.init({ worldSize: 2, rank: 1, masterPort: 9, timeoutMs: 1500 }), /Rank 1 of 2 could not join the group at 127\.0\.0\.1:9/);
});

test('collectives refuse bad tensors and arguments with errors naming them, and a destroyed group says so', { skip }, async () => {
  const g = await et.distributed.ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: await freePort(), timeoutMs: 10_000 });
  try {
    const t = et.tensor([1, 2, 3, 4]);
    await g.allReduce(t, 'avg');
    assert.deepEqual(t.toArray(), [1, 2, 3, 4], 'a group of 1 averages to itself');
    const disposed = et.ones([2]);
    disposed.dispose();
    await assert.rejects(g.allReduce(disposed), /disposed/);
    const m = et.ones([2, 3]).transpose(0, 1);
    await assert.rejects(g.allReduce(m), /Expected a contiguous tensor for the all-reduce tensor \(call \.contiguous\(\) first\)/);
    await assert.rejects(g.allReduce(et.ones([2], { dtype: 'int32' }), 'avg'), /Expected a floating tensor to average but received int32/);
    await assert.rejects(g.allReduce(t, 'mean' as never), /"op" of allReduce/);
    await assert.rejects(g.allReduce([t] as never), /Expected a Tensor for the all-reduce tensor but received object/);
    await assert.rejects(g.broadcast(t, 1), /"root" of broadcast/);
    await assert.rejects(g.reduceScatter(et.zeros([4]), [t, t]), /Expected 1 input tensors \(one per rank\) for reduceScatter but received 2/);
    await assert.rejects(g.reduceScatter(et.zeros([3]), [t]), /Expected reduce-scatter input 0 to be float32 \[3\] like the output but received float32 \[4\]/);
    // what Gloo refuses on its own comes back named, without c10's backtrace
    await assert.rejects(g.allReduce(et.ones([2], { dtype: 'int16' }), 'max'), (e: Error) => {
      assert.match(e.message, /^all-reduce failed on rank 0 of 1: .*scalar type/);
      assert.doesNotMatch(e.message, /Exception raised from/);
      return true;
    });
    // neither Gloo nor NCCL reduces tensors on other devices
    const meta = et.ones([4], { device: 'meta' });
    await assert.rejects(g.allReduce(meta), /Expected a CPU (or CUDA )?tensor for the all-reduce tensor but received one on meta/);
    await assert.rejects(g.reduceScatter(et.zeros([4]), [meta]), /Expected a CPU (or CUDA )?tensor for reduce-scatter input 0 but received one on meta/);
    const w = et.ones([2]).requiresGrad_(true);
    const metaW = et.ones([2], { device: 'meta' }).requiresGrad_(true);
    assert.throws(() => new GradientReducer(g, [w, metaW]), /Expected every parameter on one device for the gradient reducer but received cpu and meta/);
  } finally {
    g.destroy();
  }
  await assert.rejects(g.barrier(), /This process group has been destroyed/);
});

test('the backend option: Gloo alone for CPU runs, NCCL refused with the reason where it cannot be had', { skip }, async () => {
  const { ProcessGroup, available } = et.distributed;
  const port = await freePort();
  await assert.rejects(ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: port, backend: 'mpi' as never }), /Expected one of auto, gloo, nccl for "backend" but received the string "mpi"/);
  if (!available().nccl) {
    await assert.rejects(ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: port, backend: 'nccl' }), /Expected an addon built with NCCL for backend "nccl", but this one has Gloo alone/);
  } else if (!et.cuda.isAvailable()) {
    await assert.rejects(ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: port, backend: 'nccl' }), /Expected a CUDA device for backend "nccl", but this machine has none/);
  }
  const g = await ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: port, timeoutMs: 10_000, backend: 'gloo' });
  try {
    assert.equal(g.nccl, false);
    const t = et.tensor([1, 2]);
    await g.allReduce(t);
    assert.deepEqual(t.toArray(), [1, 2]);
  } finally {
    g.destroy();
  }
});
