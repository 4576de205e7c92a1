// BatchNorm1d against torch.nn.BatchNorm1d: outputs, input and parameter
// gradients over several training steps, the running statistics (unbiased
// variance, momentum) and the eval-mode output, with and without affine,
// on [N, C] and [N, C, L] inputs; then argument checks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const { BatchNorm1d } = et.nn;
const TOL = { rtol: 1e-10, atol: 1e-10 };

interface Case { name: string; affine: boolean; shape: number[]; momentum: number; eps: number }
const CASES: Case[] = [
  { name: 'plain', affine: false, shape: [16, 6], momentum: 0.1, eps: 1e-5 },
  { name: 'affine3d', affine: true, shape: [5, 4, 3], momentum: 0.3, eps: 1e-3 },
];
const STEPS = 3;

const g = et.Generator.create(3);
const inputs: Record<string, Tensor> = {};
for (const c of CASES) {
  for (let t = 0; t < STEPS; t++) {
    // Shifted and scaled so the running statistics move far from (0, 1).
    inputs[`${c.name}/x:${t}`] = et.randn(c.shape, { generator: g, dtype: 'float64' }).mul(2 + t).add(t - 1).keep();
    inputs[`${c.name}/w:${t}`] = et.randn(c.shape, { generator: g, dtype: 'float64' }).keep();
  }
  inputs[`${c.name}/x_eval`] = et.randn(c.shape, { generator: g, dtype: 'float64' }).keep();
}
const oracle = runOracle('linprobe_oracle.py', { cases: CASES.map((c) => ({ ...c, mode: 'batchnorm' })) }, inputs);

for (const c of CASES) {
  test(`BatchNorm1d ${c.name}: train steps, running statistics and eval equal torch's`, () => {
    const want = (k: string) => oracle.get(`${c.name}/${k}`)!;
    const bn = new BatchNorm1d(c.shape[1]!, { affine: c.affine, momentum: c.momentum, eps: c.eps }).to({ dtype: 'float64' });
    try {
      assert.deepEqual([...bn.stateDict().keys()], c.affine
        ? ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        : ['running_mean', 'running_var', 'num_batches_tracked']);
      for (let t = 0; t < STEPS; t++) {
        et.scope(() => {
          const x = inputs[`${c.name}/x:${t}`]!.clone().requiresGrad_(true);
          const y = bn.forward(x);
          y.mul(inputs[`${c.name}/w:${t}`]!).sum().backward();
          assertClose(y, want(`y:${t}`), `output ${t}`, TOL);
          assertClose(x.grad!, want(`gx:${t}`), `input gradient ${t}`, TOL);
        });
      }
      if (c.affine) {
        assertClose(bn.weight!.grad!, want('gweight'), 'weight gradient', TOL);
        assertClose(bn.bias!.grad!, want('gbias'), 'bias gradient', TOL);
      }
      assertClose(bn.running_mean, want('running_mean'), 'running mean', TOL);
      assertClose(bn.running_var, want('running_var'), 'running var (unbiased)', TOL);
      assert.equal(bn.num_batches_tracked.item(), STEPS);
      bn.eval();
      et.scope(() => {
        assertClose(bn.forward(inputs[`${c.name}/x_eval`]!), want('y_eval'), 'eval output', TOL);
      });
      // Eval mode leaves the statistics alone.
      assert.equal(bn.num_batches_tracked.item(), STEPS);
      assertClose(bn.running_mean, want('running_mean'), 'running mean after eval', TOL);
    } finally {
      bn.dispose();
    }
  });
}

test('BatchNorm1d: a state dict round trip and clear errors for bad input', () => {
  const bn = new BatchNorm1d(3);
  const other = new BatchNorm1d(3);
  try {
    et.scope(() => bn.forward(et.randn([4, 3]).mul(3).add(1)));
    other.loadStateDict(bn.stateDict());
    assertClose(other.running_var, bn.running_var, 'loaded running var');
    assert.equal(other.num_batches_tracked.item(), 1);
    assert.throws(() => bn.forward(et.randn([4, 5])), /Expected an input \[N, 3\] or \[N, 3, L\] for BatchNorm1d but received \[4, 5\]/);
    assert.throws(() => bn.forward(et.randn([1, 3])), /Expected more than 1 value per channel when training BatchNorm1d/);
    bn.eval();
    et.scope(() => assert.deepEqual(bn.forward(et.randn([1, 3])).shape, [1, 3]));
    assert.throws(() => new BatchNorm1d(0), /Expected a positive integer for "numFeatures" of BatchNorm1d but received number 0/);
    assert.throws(() => new BatchNorm1d(3, { momentum: 2 }), /"momentum" of BatchNorm1d/);
    assert.throws(() => new BatchNorm1d(3, { eps: -1 }), /"eps" of BatchNorm1d/);
  } finally {
    bn.dispose();
    other.dispose();
  }
});
