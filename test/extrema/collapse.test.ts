// Collapse statistics against numpy in Python, computed there the plain way
// (population std per dimension, SVD of the centred features, the full matrix
// of pairwise cosines), on spread, collapsed and low-rank batches.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as et from '../../lib';
import { collapseStats, readCollapseStats } from '../../lib/extrema';
import { runPython, tmpDir } from '../helpers/oracle';

test('spread, effective rank and mean cosine equal numpy on spread, collapsed and rank-3 batches', () => {
  const g = et.Generator.create(21);
  const cases = et.scope(() => {
    const spreadZ = et.randn([64, 16], { generator: g });
    const spreadF = et.randn([64, 24], { generator: g });
    // every image near one point: the spread and rank fall, the cosine rises to 1
    const point = et.randn([1, 16], { generator: g });
    const collapsedZ = point.add(et.randn([64, 16], { generator: g }).mul(0.01));
    const collapsedF = et.randn([1, 24], { generator: g }).add(et.randn([64, 24], { generator: g }).mul(0.01));
    const rank3F = et.randn([64, 3], { generator: g }).matmul(et.randn([3, 24], { generator: g }));
    return [['spread', spreadZ, spreadF], ['collapsed', collapsedZ, collapsedF], ['rank3', spreadZ, rank3F]] as const;
  });
  const dir = tmpDir();
  const file = path.join(dir, 'in.safetensors');
  const inputs: Record<string, et.Tensor> = {};
  for (const [name, z, f] of cases) Object.assign(inputs, { [`${name}/z`]: z, [`${name}/f`]: f });
  et.saveSafetensors(file, inputs);
  const ref = JSON.parse(runPython(`
import json, sys, numpy as np
from safetensors.numpy import load_file
x = load_file(sys.argv[1])
out = {}
for name in ["spread", "collapsed", "rank3"]:
    z = x[name + "/z"].astype(np.float64); f = x[name + "/f"].astype(np.float64)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    spread = zn.std(axis=0).mean() * np.sqrt(zn.shape[1])
    s = np.linalg.svd(f - f.mean(0), compute_uv=False)
    p = s / s.sum()
    erank = float(np.exp(-(p * np.log(np.clip(p, 1e-12, None))).sum()))
    cos = zn @ zn.T
    n = len(zn)
    out[name] = [spread, erank, (cos.sum() - np.trace(cos)) / (n * (n - 1))]
print(json.dumps(out))
`, [file]).trim()) as Record<string, number[]>;
  for (const [name, z, f] of cases) {
    const got = readCollapseStats(collapseStats(z, f));
    const want = ref[name]!;
    assert.ok(Math.abs(got.spread - want[0]!) < 1e-5, `${name} spread ${got.spread} vs ${want[0]}`);
    assert.ok(Math.abs(got.effectiveRank - want[1]!) < 1e-3 * want[1]!, `${name} effective rank ${got.effectiveRank} vs ${want[1]}`);
    assert.ok(Math.abs(got.meanCosine - want[2]!) < 1e-5, `${name} mean cosine ${got.meanCosine} vs ${want[2]}`);
  }
  const [healthy, collapsed, rank3] = cases.map(([, z, f]) => readCollapseStats(collapseStats(z, f)));
  assert.ok(healthy!.spread > 0.9 && collapsed!.spread < 0.05, `spread: ${healthy!.spread} healthy, ${collapsed!.spread} collapsed`);
  assert.ok(collapsed!.meanCosine > 0.99 && Math.abs(healthy!.meanCosine) < 0.05, 'cosine: near 1 collapsed, near 0 spread');
  assert.ok(rank3!.effectiveRank <= 3 + 1e-3 && healthy!.effectiveRank > 15, `effective rank ${rank3!.effectiveRank} (rank 3) vs ${healthy!.effectiveRank}`);
  assert.throws(() => collapseStats(et.zeros([4, 3]), et.zeros([5, 3])), /targets \[B, d\] and features \[B, D\] with the same B/);
  assert.throws(() => collapseStats(et.zeros([1, 3]), et.zeros([1, 3])), /at least 2 images/);
});
