// One rank of the distributed tests (spawned by spawn-ranks.ts with torchrun's
// environment): runs a scenario and prints its results as one JSON line.
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { DistributedDataParallel, type ProcessGroup } from '../../lib/distributed';

type Result = Record<string, unknown>;

const DTYPES = ['float32', 'float64', 'int32', 'int64'] as const;
/** Where this rank's tensors live: TEST_DEVICE=cuda puts them on the rank's own GPU (LOCAL_RANK), over NCCL. */
const DEVICE = process.env.TEST_DEVICE === 'cuda' ? `cuda:${process.env.LOCAL_RANK ?? '0'}` : 'cpu';

/** Rank-dependent values every rank can also compute for any other rank. */
const valuesOf = (rank: number) => [rank + 1, -2 * rank, 3, rank * rank + 0.5].map((v) => Math.round(v * 2) / 2);

async function collectives(g: ProcessGroup): Promise<Result> {
  const out: Result = {};
  for (const dtype of DTYPES) {
    const mine = () => et.tensor(valuesOf(g.rank).map((v) => (dtype.startsWith('int') ? Math.trunc(v) : v)), { dtype, device: DEVICE });
    for (const op of ['sum', 'max', 'min', 'product', ...(dtype.startsWith('float') ? ['avg'] as const : [])] as const) {
      const t = mine();
      await g.allReduce(t, op);
      out[`allReduce/${dtype}/${op}`] = Array.from(t.toTypedArray(), Number);
      t.dispose();
    }
    const b = mine();
    await g.broadcast(b, g.size - 1);
    out[`broadcast/${dtype}`] = Array.from(b.toTypedArray(), Number);
    b.dispose();
    const parts = await g.allGather(mine());
    out[`allGather/${dtype}`] = parts.map((p) => Array.from(p.toTypedArray(), Number));
    for (const p of parts) p.dispose();
    const inputs = Array.from({ length: g.size }, (_, r) => et.tensor(valuesOf(g.rank).map((v) => (dtype.startsWith('int') ? Math.trunc(v) : v) * (r + 1)), { dtype, device: DEVICE }));
    const rs = et.zeros([4], { dtype, device: DEVICE });
    await g.reduceScatter(rs, inputs, 'sum');
    out[`reduceScatter/${dtype}`] = Array.from(rs.toTypedArray(), Number);
    for (const t of [...inputs, rs]) t.dispose();
  }
  // the call returns at once and the event loop keeps turning while the work runs
  const big = et.ones([4_000_000], { device: DEVICE });
  let settled = false;
  const pending = g.allReduce(big, 'sum').then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  out.settledAfterOneTurn = settled;
  await pending;
  out.bigSum = big.sum().item();
  big.dispose();
  await g.barrier();
  return out;
}

/** A small classifier trained with data parallelism: each rank takes the strided slice rank::size of every global batch. */
async function ddp(g: ProcessGroup): Promise<Result> {
  const steps = 8;
  const batch = 16;
  const gen = et.Generator.create(7);
  // drawn on the CPU, so every device trains on the same data
  const x = et.randn([steps * batch, 12], { generator: gen }).to({ device: DEVICE });
  const y = et.randint(0, 4, [steps * batch], { generator: gen }).to({ device: DEVICE });
  // different init on each rank: the broadcast must make them equal
  const model = new et.nn.Sequential(new et.nn.Linear(12, 32, { generator: et.Generator.create(100 + g.rank) }), new et.nn.GELU(), new et.nn.Linear(32, 4, { generator: et.Generator.create(200 + g.rank) }));
  model.to(DEVICE);
  const params = model.parameters();
  const mode = (process.env.DDP_MODE ?? 'overlap') as 'overlap' | 'after';
  const dp = new DistributedDataParallel(g, params, { bucketBytes: 1024, mode }); // several buckets
  await dp.broadcastFromRoot(params);
  const opt = new et.AdamW(params, { lr: 1e-2, weightDecay: 0.05 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const rows = et.arange(s * batch + g.rank, (s + 1) * batch, g.size, { dtype: 'int64', device: DEVICE });
    const loss = et.scope(() => {
      const l = et.crossEntropy(model.forward(x.indexSelect(0, rows)), y.indexSelect(0, rows));
      dp.beforeBackward();
      l.backward();
      return l.detach().keep();
    });
    rows.dispose();
    await dp.afterBackward();
    opt.step();
    opt.zeroGrad();
    await g.allReduce(loss, 'avg');
    losses.push(loss.item() as number);
    loss.dispose();
  }
  await dp.assertSameOnAllRanks(params, 'the trained weights');
  dp.dispose();
  return { losses, params: params.map((p) => Array.from(p.toTypedArray(), Number)), buckets: dp.buckets.length };
}

/** Rank 1 dies without a word; the others must get an error, not hang. */
async function die(g: ProcessGroup): Promise<Result> {
  await g.barrier();
  if (g.rank === 1) process.exit(3);
  const started = Date.now();
  try {
    const t = et.ones([1000]);
    for (let i = 0; i < 50; i++) {
      await g.allReduce(t, 'sum');
      await new Promise((r) => setTimeout(r, 20));
    }
    return { error: null };
  } catch (e) {
    return { error: (e as Error).message, seconds: (Date.now() - started) / 1000 };
  }
}

const SCENARIOS: Record<string, (g: ProcessGroup) => Promise<Result>> = { collectives, ddp, die };

(async () => {
  const name = process.argv[2]!;
  const backend = (process.env.TEST_BACKEND ?? (DEVICE === 'cpu' ? 'gloo' : 'nccl')) as et.distributed.Backend;
  const g = await et.distributed.init({ timeoutMs: Number(process.env.TEST_TIMEOUT_MS ?? 60_000), backend });
  if (et.distributed.group() !== g) throw new Error('init() did not set the default group');
  await assert.rejects(et.distributed.init(), /already belongs to a group \(rank \d of \d\)/);
  const result = await SCENARIOS[name]!(g);
  process.stdout.write(`${JSON.stringify({ rank: g.rank, size: g.size, ...result })}\n`);
  et.distributed.destroy();
  if (et.distributed.group() !== null) throw new Error('destroy() left the default group set');
})().catch((e) => {
  process.stderr.write(`rank ${process.env.RANK}: ${(e as Error).stack}\n`);
  process.exit(1);
});
