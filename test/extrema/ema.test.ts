// EMA: the closed form over several steps with a changing momentum, for the
// fused multi-tensor path and the per-tensor loop; and the momentum schedule.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { emaUpdate, momentumAt, ExtremaModel } from '../../lib/extrema';

test('momentum schedule: 1 - (1 - m0)(1 + cos(pi t / T)) / 2', () => {
  assert.equal(momentumAt(0, 100), 0.996);
  assert.equal(momentumAt(100, 100), 1);
  assert.ok(Math.abs(momentumAt(50, 100) - 0.998) < 1e-15);
  assert.ok(Math.abs(momentumAt(25, 100, 0.99) - (1 - 0.01 * (1 + Math.cos(Math.PI / 4)) / 2)) < 1e-15);
  assert.throws(() => momentumAt(1, 0), /positive total/);
  assert.throws(() => momentumAt(1, 10, 1.5), /base momentum in \[0, 1\]/);
});

for (const fused of [true, false]) {
  test(`EMA (${fused ? 'fused' : 'loop'}) equals the closed form over 5 steps`, () => {
    et.scope(() => {
      const g = et.Generator.create(4);
      const shapes = [[3, 4], [7], [2, 2, 2]];
      const teacher = shapes.map((s) => et.randn(s, { generator: g, dtype: 'float64' }));
      const t0 = teacher.map((t) => Array.from(t.toTypedArray<'float64'>()));
      const steps = [0.9, 0.95, 0.5, 0.99, 0.996];
      const expected = t0.map((a) => a.slice());
      for (const m of steps) {
        const student = shapes.map((s) => et.randn(s, { generator: g, dtype: 'float64' }));
        emaUpdate(teacher, student, m, { fused });
        student.forEach((s, i) => {
          const sv = s.toTypedArray<'float64'>();
          expected[i] = expected[i]!.map((v, j) => m * v + (1 - m) * (sv[j] as number));
        });
      }
      teacher.forEach((t, i) => {
        const got = t.toTypedArray<'float64'>();
        got.forEach((v, j) => assert.ok(Math.abs(v - expected[i]![j]!) < 1e-13, `tensor ${i} element ${j}: ${v} vs ${expected[i]![j]}`));
      });
    });
  });
}

test('updateTeacher moves every teacher parameter and nothing else, without gradients', () => {
  et.scope(() => {
    const model = new ExtremaModel({ encoder: { imgSize: 16, patchSize: 4, embedDim: 16, depth: 1, numHeads: 2 }, projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5 }, { seed: 1 });
    // Teacher starts equal to the student.
    for (const [[k, t], [, s]] of model.momentum_encoder.namedParameters().map((e, i) => [e, model.base_encoder.namedParameters()[i]!] as const)) {
      assert.equal(t.sub(s).abs().max().item(), 0, `${k} starts as a copy`);
      assert.equal(t.requiresGrad, false);
    }
    et.noGrad(() => model.base_encoder.parameters().forEach((p) => p.add_(1)));
    const before = model.momentum_encoder.parameters().map((p) => p.clone());
    const predictor = model.predictor.parameters().map((p) => p.clone());
    model.updateTeacher(0.75);
    model.momentum_encoder.parameters().forEach((p, i) => {
      const expected = before[i]!.add(0.25);
      assert.ok(p.sub(expected).abs().max().item() < 1e-6);
    });
    model.predictor.parameters().forEach((p, i) => assert.equal(p.sub(predictor[i]!).abs().max().item(), 0));
    assert.deepEqual(model.momentum_encoder.pos_embed.toArray(), model.base_encoder.pos_embed.toArray(), 'pos_embed is fixed');
    model.dispose();
  });
});
