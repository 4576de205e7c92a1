// Mixup / CutMix against timm's Mixup(mode='batch') and mixup_target with the
// same lambda and box centre injected (images and targets bit for bit),
// soft-target cross-entropy against timm's SoftTargetCrossEntropy (value and
// gradient), then the per-batch draws' distribution, seeding and errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { cutmixBox, mixupCutmix, mixWith, sampleMixParams, smoothTargets, softTargetCrossEntropy, type MixupConfig } from '../../lib/data/mixup';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const CFG: MixupConfig = { mixupAlpha: 0.8, cutmixAlpha: 1.0, switchProb: 0.5, prob: 1.0, labelSmoothing: 0.1, numClasses: 10 };

function sameValues(a: et.Tensor, b: et.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = a.toTypedArray() as Float32Array;
  const y = b.toTypedArray() as Float32Array;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) assert.fail(`${what}: element ${i} is ${x[i]} but timm gives ${y[i]}`);
}

test('mixup and cutmix with injected lambda / box centre equal timm Mixup output', () => {
  const g = et.Generator.create(1);
  const x = et.randn([6, 3, 13, 17], { generator: g });
  const labels = et.tensor([3, 0, 9, 3, 5, 1], { dtype: 'int64' });
  const cases = [
    { lam: 0.37, cutmix: false },
    { lam: 0.6, cutmix: true, cy: 6, cx: 8 },
    { lam: 0.25, cutmix: true, cy: 1, cx: 15 }, // clipped at the top and the right: lam corrected to the box area
    { lam: 0.9, cutmix: true, cy: 12, cx: 0 },
  ];
  for (const c of cases) {
    const mix = c.cutmix ? cutmixBox(13, 17, c.lam, c.cy!, c.cx!) : { lam: c.lam, box: null };
    const ours = mixWith(x, labels, mix, 10, 0.1);
    const ref = runOracle('timm_aug_oracle.py', { mode: 'mixup', smoothing: 0.1, numClasses: 10, ...c }, { x, labels });
    sameValues(ours.images, ref.get('x')!, `images (${JSON.stringify(c)})`);
    sameValues(ours.targets, ref.get('target')!, `targets (${JSON.stringify(c)})`);
    if (c.cutmix) assert.notEqual(mix.lam, c.lam, 'the cutmix lambda is corrected to the box area');
    for (const t of [ours.images, ours.targets, ...ref.values()]) t.dispose();
  }
  x.dispose();
  labels.dispose();
});

test('softTargetCrossEntropy equals timm SoftTargetCrossEntropy, gradient included', () => {
  const g = et.Generator.create(2);
  const logits = et.randn([5, 7], { generator: g }).mul(3).detach().requiresGrad_(true);
  const labels = et.tensor([0, 6, 2, 2, 4], { dtype: 'int64' });
  const targets = et.scope(() => {
    const y = smoothTargets(labels, 7, 0.1);
    return y.mul(0.3).add(y.flip(0).mul(0.7));
  });
  const loss = softTargetCrossEntropy(logits, targets);
  loss.backward();
  const ref = runOracle('timm_aug_oracle.py', { mode: 'soft_ce' }, { logits: logits.detach(), targets });
  assertClose(loss.detach().reshape(1), ref.get('loss')!, 'loss', { atol: 1e-6, rtol: 1e-6 });
  assertClose(logits.grad!, ref.get('grad')!, 'gradient', { atol: 1e-7, rtol: 1e-6 });
  for (const t of [logits, labels, targets, loss, ...ref.values()]) t.dispose();
});

test('smoothTargets: 1 - s + s/K on the label, s/K elsewhere', () => {
  const y = smoothTargets(et.tensor([2, 0], { dtype: 'int64' }), 4, 0.2);
  assert.deepEqual(Array.from(y.toTypedArray() as Float32Array).map((v) => +v.toFixed(6)), [0.05, 0.05, 0.85, 0.05, 0.85, 0.05, 0.05, 0.05]);
  y.dispose();
});

test('sampleMixParams: switch probability, Beta(0.8, 0.8) lambda, boxes, seeding', () => {
  const g = et.Generator.create(11);
  const n = 3000;
  const mixLams: number[] = [];
  let cutmix = 0;
  for (let i = 0; i < n; i++) {
    const p = sampleMixParams(CFG, 32, 24, g);
    if (p.box === null) mixLams.push(p.lam);
    else {
      cutmix++;
      const [yl, yh, xl, xh] = p.box;
      assert.ok(yl >= 0 && yl <= yh && yh <= 32 && xl >= 0 && xl <= xh && xh <= 24);
      assert.ok(Math.abs(p.lam - (1 - ((yh - yl) * (xh - xl)) / (32 * 24))) < 1e-12);
    }
  }
  const se = Math.sqrt(0.25 / n);
  assert.ok(Math.abs(cutmix / n - 0.5) < 4 * se, `cutmix fraction ${cutmix / n}`);
  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.0962 for a = 0.8.
  const mean = mixLams.reduce((s, v) => s + v, 0) / mixLams.length;
  const variance = mixLams.reduce((s, v) => s + (v - mean) ** 2, 0) / mixLams.length;
  assert.ok(Math.abs(mean - 0.5) < 4 * Math.sqrt(0.0962 / mixLams.length), `mixup lambda mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / (4 * 2.6)) < 0.01, `mixup lambda variance ${variance}`);
  // Beta(0.8, 0.8) puts more mass near the ends than the uniform: P(lam < 0.1) = 0.132.
  const low = mixLams.filter((v) => v < 0.1).length / mixLams.length;
  assert.ok(Math.abs(low - 0.132) < 4 * Math.sqrt(0.132 * 0.868 / mixLams.length), `P(lam < 0.1) = ${low}`);
  assert.deepEqual(sampleMixParams({ ...CFG, prob: 0 }, 8, 8, g), { lam: 1, box: null });
  assert.deepEqual(sampleMixParams(CFG, 8, 8, et.Generator.create(4)), sampleMixParams(CFG, 8, 8, et.Generator.create(4)));
});

test('mixupCutmix: seeded, leaves the inputs alone, targets sum to 1', () => {
  const x = et.rand([4, 1, 8, 8], { generator: et.Generator.create(3) });
  const before = Array.from(x.toTypedArray() as Float32Array);
  const labels = et.tensor([1, 2, 3, 4], { dtype: 'int64' });
  const live = et.memory().liveTensors;
  const a = mixupCutmix(x, labels, CFG, et.Generator.create(9));
  assert.equal(et.memory().liveTensors, live + 2, 'mixupCutmix leaves only its two results behind');
  const b = mixupCutmix(x, labels, CFG, et.Generator.create(9));
  sameValues(a.images, b.images, 'same seed');
  assert.deepEqual(Array.from(x.toTypedArray() as Float32Array), before);
  const sums = Array.from(et.scope(() => a.targets.sum(1)).toTypedArray() as Float32Array);
  sums.forEach((s) => assert.ok(Math.abs(s - 1) < 1e-6));
  for (const t of [x, labels, a.images, a.targets, b.images, b.targets]) t.dispose();
});

test('mixup rejects bad input with a clear message', () => {
  const x = et.zeros([3, 3, 4, 4]);
  const l3 = et.tensor([0, 1, 2], { dtype: 'int64' });
  assert.throws(() => mixupCutmix(x, l3, CFG), /Expected an even batch size for mixup\/cutmix for the images but received/);
  const x4 = et.zeros([4, 3, 4, 4]);
  const bad = et.tensor([0, 1, 2, 10], { dtype: 'int64' });
  assert.throws(() => mixupCutmix(x4, bad, CFG), /Expected labels in \[0, 9\] for the labels but received .*labels from 0 to 10/);
  assert.throws(() => mixupCutmix(x4, l3, CFG), /Expected int64 labels of shape \[4\] for the labels/);
  assert.throws(() => mixupCutmix(x4, bad, { ...CFG, switchProb: 2 }), /Expected a probability in \[0, 1\] for switchProb but received number 2/);
  const logits = et.zeros([2, 3]);
  const t = et.zeros([2, 4]);
  assert.throws(() => softTargetCrossEntropy(logits, t), /Expected targets of shape \[2, 3\] for the targets but received .*shape \[2, 4\]/);
  for (const v of [x, l3, x4, bad, logits, t]) v.dispose();
});
