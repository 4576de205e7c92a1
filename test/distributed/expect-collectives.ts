// What every rank of the 'collectives' scenario (rank-worker.ts) must report,
// worked out here for any world size: shared by the Gloo tests and the NCCL
// ones that run where a GPU is.
import * as assert from 'node:assert/strict';
import type { RankExit } from './spawn-ranks';

/** Rank-dependent values; rank-worker.ts makes the same ones. */
const valuesOf = (rank: number) => [rank + 1, -2 * rank, 3, rank * rank + 0.5].map((v) => Math.round(v * 2) / 2);
const DTYPES = ['float32', 'float64', 'int32', 'int64'];

/**
 * Checks each rank's results. onHostThreads: the collective ran on the
 * backend's own threads, so a large all-reduce cannot have settled within
 * one turn of the event loop (Gloo; NCCL's settle at once, queued on its stream).
 */
export function assertCollectives(exits: RankExit[], size: number, { onHostThreads }: { onHostThreads: boolean }): void {
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
    if (onHostThreads) assert.equal(r.settledAfterOneTurn, false, 'the all-reduce of 16 MB finished within one turn of the event loop: it ran on the JS thread');
  }
}
