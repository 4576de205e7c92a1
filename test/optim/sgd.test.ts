// SGD against torch.optim.SGD over steps with a changing lr: momentum with
// and without dampening, weight decay, Nesterov, a parameter without a
// gradient at some steps; save/load mid-run continues identically; argument
// checks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const { SGD } = et.optim;
const STEPS = 30;
const SHAPES = [[4, 3], [3], [2, 2, 2], [2, 3]];
const LRS = Array.from({ length: STEPS }, (_, t) => et.warmupCosine(t, { base: 0.2, warmupSteps: 5, totalSteps: STEPS }));
const NO_GRAD: Record<string, number[]> = { 1: [0, 4, 17] };

interface Case { name: string; momentum: number; dampening: number; weight_decay: number; nesterov: boolean; lars?: boolean; trust_coefficient?: number }
const CASES: Case[] = [
  { name: 'probe', momentum: 0.9, dampening: 0, weight_decay: 0, nesterov: false },
  { name: 'damped', momentum: 0.8, dampening: 0.3, weight_decay: 0.01, nesterov: false },
  { name: 'nesterov', momentum: 0.9, dampening: 0, weight_decay: 1e-3, nesterov: true },
  { name: 'plain', momentum: 0, dampening: 0, weight_decay: 0.05, nesterov: false },
  // MAE's LARS; parameter 3 starts at zero, where the trust ratio is 1.
  { name: 'lars', momentum: 0.9, dampening: 0, weight_decay: 0.05, nesterov: false, lars: true, trust_coefficient: 0.01 },
];

const gen = et.Generator.create(21);
const init = SHAPES.map((s, i) => (i === 3 ? et.zeros(s) : et.randn(s, { generator: gen })).keep());
const grads = SHAPES.map((s) => et.randn([STEPS, ...s], { generator: gen }).keep());
const inputs: Record<string, Tensor> = {};
for (const c of CASES) SHAPES.forEach((_, i) => { inputs[`${c.name}/p:${i}`] = init[i]!; inputs[`${c.name}/g:${i}`] = grads[i]!; });
const oracle = runOracle('linprobe_oracle.py', { cases: CASES.map((c) => ({ ...c, mode: 'sgd', lrs: LRS, no_grad: NO_GRAD })) }, inputs);

function run(opt: InstanceType<typeof SGD>, params: Tensor[], from: number, to: number): void {
  for (let t = from; t < to; t++) {
    et.scope(() => {
      opt.setLr(LRS[t]!);
      params.forEach((p, i) => { p.grad = NO_GRAD[i]?.includes(t) ? null : grads[i]!.select(0, t).clone(); });
      opt.step();
    });
  }
}

const options = (c: Case) => ({ lr: LRS[0]!, momentum: c.momentum, dampening: c.dampening, weightDecay: c.weight_decay, nesterov: c.nesterov, lars: c.lars, trustCoefficient: c.trust_coefficient });

for (const c of CASES) {
  test(`SGD ${c.name}: ${STEPS} steps with a changing lr equal torch.optim.SGD, and a resumed run continues identically`, () => {
    const params = init.map((t) => t.clone().requiresGrad_(true).keep());
    const opt = new SGD(params, options(c));
    run(opt, params, 0, 12);
    // Resume: a second optimizer on copies of the parameters takes over the state.
    const sd = opt.stateDict();
    const resumed = params.map((p) => p.detach().clone().requiresGrad_(true).keep());
    const opt2 = new SGD(resumed, { lr: 1 });
    opt2.loadStateDict(sd);
    for (const t of sd.state.values()) t.dispose();
    run(opt, params, 12, STEPS);
    run(opt2, resumed, 12, STEPS);
    params.forEach((p, i) => {
      assertClose(p.detach(), oracle.get(`${c.name}/p:${i}`)!, `param ${i}`);
      assertClose(resumed[i]!.detach(), p.detach(), `resumed param ${i}`, { rtol: 0, atol: 0 });
      const buf = opt.stateDict().state.get(`${i}.momentum_buffer`);
      const want = oracle.get(`${c.name}/buf:${i}`);
      if (want === undefined) assert.equal(buf, undefined, 'no momentum buffer without momentum');
      else assertClose(buf!, want, `momentum buffer ${i}`);
    });
    opt.dispose();
    opt2.dispose();
    for (const p of [...params, ...resumed]) p.dispose();
  });
}

test('SGD: argument and state-dict checks', () => {
  const p = et.zeros([2], { requiresGrad: true }).keep();
  assert.throws(() => new SGD([p], { lr: -1 }), /Expected a non-negative finite number for "lr" of SGD but received number -1/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum needs a positive momentum and zero dampening/);
  assert.throws(() => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, lars: true }), /LARS has neither Nesterov momentum nor dampening/);
  assert.throws(() => new SGD([et.zeros([2])], { lr: 0.1 }), /does not require grad/);
  assert.throws(() => new SGD([], { lr: 0.1 }), /SGD got no parameters/);
  const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
  assert.throws(() => opt.loadStateDict({ state: new Map([['0.exp_avg', et.zeros([2])]]), groups: opt.stateDict().groups }), /unexpected state key "0.exp_avg"/);
  assert.throws(() => opt.loadStateDict({ state: new Map([['0.momentum_buffer', et.zeros([3])]]), groups: opt.stateDict().groups }), /has shape \[3\] but expected \[2\]/);
  opt.dispose();
  assert.throws(() => opt.step(), /This SGD has been disposed/);
  p.dispose();
});
