// Collectives across real processes (Gloo over TCP on this machine), checked
// against values worked out here for every rank; and what a rank sees when
// another one dies.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { spawnRanks } from './spawn-ranks';
import { freePort } from '../helpers/net';

const valuesOf = (rank: number) => [rank + 1, -2 * rank, 3, rank * rank + 0.5].map((v) => Math.round(v * 2) / 2);
const DTYPES = ['float32', 'float64', 'int32', 'int64'];

const skip = et.distributed.available().gloo ? false : 'this build has no torch.distributed';

for (const size of [2, 3]) {
  test(`${size} ranks: all-reduce (sum, max, min, product, avg), broadcast, all-gather and reduce-scatter give every rank the expected values for each dtype`, { skip, timeout: 120_000 }, async () => {
    const exits = await spawnRanks('collectives', size);
    for (const e of exits) assert.equal(e.code, 0, `rank ${e.rank} failed: ${e.stderr}`);
    for (const e of exits) {
      const r = e.result!;
      assert.equal(r.rank, e.rank);
      assert.equal(r.size, size);
      for (const dtype of DTYPES) {
        const int = dtype.startsWith('int');
        const rows = Array.from({ length: size }, (_, q) => valuesOf(q).map((v) => (int ? Math.trunc(v) : v)));
        const column = (i: number) => rows.map((row) => row[i]!);
        const expect: Record<string, number[]> = {
          sum: [0, 1, 2, 3].map((i) => column(i).reduce((a, b) => a + b, 0)),
          max: [0, 1, 2, 3].map((i) => Math.max(...column(i))),
          min: [0, 1, 2, 3].map((i) => Math.min(...column(i))),
          product: [0, 1, 2, 3].map((i) => column(i).reduce((a, b) => a * b, 1)),
        };
        if (!int) expect.avg = expect.sum!.map((v) => v / size);
        for (const [op, want] of Object.entries(expect)) {
          const got = r[`allReduce/${dtype}/${op}`] as number[];
          assert.deepEqual(got.map((v) => +v.toPrecision(6)), want.map((v) => +(v + 0).toPrecision(6)), `rank ${e.rank} all-reduce ${op} ${dtype}`);
        }
        assert.deepEqual(r[`broadcast/${dtype}`], rows[size - 1]!.map((v) => v + 0), `rank ${e.rank} broadcast ${dtype}`);
        assert.deepEqual(r[`allGather/${dtype}`], rows.map((row) => row.map((v) => v + 0)), `rank ${e.rank} all-gather ${dtype}`);
        assert.deepEqual(r[`reduceScatter/${dtype}`], [0, 1, 2, 3].map((i) => column(i).reduce((a, b) => a + b, 0) * (e.rank + 1)), `rank ${e.rank} reduce-scatter ${dtype}`);
      }
      assert.equal(r.bigSum, 4_000_000 * size);
      assert.equal(r.settledAfterOneTurn, false, 'the all-reduce of 16 MB finished within one turn of the event loop: it ran on the JS thread');
    }
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
  } finally {
    g.destroy();
  }
  await assert.rejects(g.barrier(), /This process group has been destroyed/);
});
