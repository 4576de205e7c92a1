// Mask sampling: sizes, disjointness, uniformity over many draws, and clear
// errors for impossible settings.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { sampleMasks, checkMasking, visibleCount } from '../../lib/extrema';

function rowsOf(keep: et.Tensor): number[][][] {
  return keep.toArray() as number[][][];
}

test('disjoint masks: shape [B, M, floor(N(1-r))], no token twice within an image', () => {
  const g = et.Generator.create(1);
  for (const [n, ratio, m] of [[16, 0.75, 4], [49, 0.8, 2], [196, 0.9, 8], [196, 0.8, 5]] as const) {
    const keep = sampleMasks(32, n, { ratio, numMasks: m, generator: g });
    const k = visibleCount(n, ratio);
    assert.deepEqual(keep.shape, [32, m, k]);
    assert.equal(keep.dtype, 'int64');
    for (const image of rowsOf(keep)) {
      const flat = image.flat();
      assert.equal(new Set(flat).size, m * k, `views of one image are disjoint (N=${n}, ${ratio} x ${m})`);
      assert.ok(flat.every((i) => i >= 0 && i < n));
    }
    keep.dispose();
  }
  assert.equal(visibleCount(196, 0.8), 39);
  assert.equal(visibleCount(49, 0.8), 9);
  assert.equal(visibleCount(10, 0.9), 1, 'no float round-down to 0');
});

test('every token is equally likely in every view (chi-square over 4,000 draws)', () => {
  const g = et.Generator.create(2);
  const n = 16;
  const keep = sampleMasks(4000, n, { ratio: 0.75, numMasks: 2, generator: g });
  const counts = [new Array<number>(n).fill(0), new Array<number>(n).fill(0)];
  for (const image of rowsOf(keep)) image.forEach((view, v) => view.forEach((i) => counts[v]![i]!++));
  keep.dispose();
  const expected = (4000 * 4) / n;
  for (const c of counts) {
    const chi2 = c.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    // 15 degrees of freedom: P(chi2 > 37.7) = 0.001.
    assert.ok(chi2 < 37.7, `chi-square ${chi2.toFixed(1)} for counts ${c.join(',')}`);
  }
});

test('independent masks may overlap across views but never repeat within one', () => {
  const g = et.Generator.create(3);
  const keep = sampleMasks(200, 16, { ratio: 0.5, numMasks: 3, mode: 'independent', generator: g });
  assert.deepEqual(keep.shape, [200, 3, 8]);
  let overlapping = 0;
  for (const image of rowsOf(keep)) {
    for (const view of image) assert.equal(new Set(view).size, 8);
    if (new Set(image.flat()).size < 24) overlapping++;
  }
  keep.dispose();
  assert.ok(overlapping > 190, `3 views of 8 out of 16 tokens overlap almost always (${overlapping}/200)`);
});

test('impossible mask settings are clear errors', () => {
  assert.throws(() => checkMasking(196, { ratio: 1, numMasks: 1 }), /mask ratio in \[0, 1\) but received number 1/);
  assert.throws(() => checkMasking(196, { ratio: -0.1, numMasks: 1 }), /mask ratio in \[0, 1\)/);
  assert.throws(() => checkMasking(196, { ratio: 0.8, numMasks: 0 }), /positive integer number of masks/);
  assert.throws(() => checkMasking(196, { ratio: 0.8, numMasks: 6 }), /6 disjoint masks of 39 visible tokens need 234 patches but the image has 196; lower numMasks to 5/);
  assert.throws(() => checkMasking(4, { ratio: 0.9, numMasks: 1 }), /leaves no visible token of 4 patches/);
  assert.throws(() => checkMasking(196, { ratio: 0.8, numMasks: 1, mode: 'overlap' as never }), /"disjoint" or "independent"/);
  assert.equal(checkMasking(196, { ratio: 0.8, numMasks: 6, mode: 'independent' }), 39, 'independent masks may exceed N in total');
  // The model config rejects the same combinations up front.
  assert.throws(() => new et.ExtremaModel({ encoder: { imgSize: 28, patchSize: 4, embedDim: 16, depth: 1, numHeads: 2 }, maskRatio: 0.8, numMasks: 6 }),
    /6 disjoint masks of 9 visible tokens need 54 patches but the image has 49/);
});
