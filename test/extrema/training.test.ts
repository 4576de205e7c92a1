// A short training run against PyTorch: plain SGD on the student and the EMA
// teacher, same initial weights, views and masks: the loss curves and the
// final weights of all three parts must agree. Also: steps run flat in memory.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { ExtremaModel, momentumAt } from '../../lib/extrema';
import { runOracle } from '../helpers/oracle';
import { assertCloseToScale } from '../helpers/compare';

const CONFIG = {
  encoder: { imgSize: 16, patchSize: 4, inChans: 1, embedDim: 32, depth: 2, numHeads: 2 },
  projectorHiddenDim: 32, projectorDim: 16, predictorHiddenDim: 32, maskRatio: 0.75, numMasks: 2,
};

test('12 SGD + EMA steps follow the PyTorch loss curve and end at the same weights', () => {
  et.scope(() => {
    const steps = 12;
    const lr = 0.5;
    const g = et.Generator.create(21);
    const model = new ExtremaModel(CONFIG, { seed: 8 });
    const initial = Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v.clone()]));
    const students = et.randn([steps, 8, 1, 16, 16], { generator: g });
    const teachers = students.add(et.randn([steps, 8, 1, 16, 16], { generator: g }).mul(0.3));
    const visibles = et.stack(Array.from({ length: steps }, () => model.sampleMasks(8, g)));
    const momenta = Array.from({ length: steps }, (_, t) => momentumAt(t, steps, 0.9));
    const losses: number[] = [];
    const params = model.studentParameters().map(([, p]) => p);
    for (let t = 0; t < steps; t++) {
      et.scope(() => {
        const out = model.forward(students.select(0, t), teachers.select(0, t), { visible: visibles.select(0, t) });
        out.loss.backward();
        losses.push(out.loss.item());
        et.noGrad(() => {
          for (const p of params) {
            const grad = p.grad!;
            p.sub_(grad, lr);
            p.grad = null;
          }
        });
        model.updateTeacher(momenta[t]!);
      });
    }
    const ref = runOracle('extrema_ref.py', { task: 'train_sgd', config: model.config, lr, momenta }, { ...initial, students, teachers, visibles });
    const expected = Array.from(ref.get('losses')!.toTypedArray<'float32'>());
    losses.forEach((l, t) => assert.ok(Math.abs(l - expected[t]!) < 2e-5 * Math.max(1, Math.abs(expected[t]!)), `step ${t}: loss ${l} vs PyTorch ${expected[t]}`));
    assert.ok(losses[steps - 1]! < losses[0]! - 0.05, `the loss went down (${losses[0]} -> ${losses[steps - 1]})`);
    for (const [k, v] of model.stateDict()) assertCloseToScale(v, ref.get(`final:${k}`)!, `final ${k}`, 1e-4);
    model.dispose();
  });
});

test('training steps in scopes run flat: no tensor outlives its step', () => {
  et.scope(() => {
    const model = new ExtremaModel(CONFIG, { seed: 1 });
    const x = et.randn([4, 1, 16, 16]);
    const step = () => et.scope(() => {
      model.forward(x, x).loss.backward();
      model.zeroGrad();
      model.updateTeacher(0.99);
    });
    step();
    const live = et.memory().liveTensors;
    for (let i = 0; i < 30; i++) step();
    assert.equal(et.memory().liveTensors, live);
    model.dispose();
  });
});
