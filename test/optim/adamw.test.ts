// AdamW against torch.optim.AdamW on the same gradients (fused and foreach),
// the decay/no-decay split, save/load mid-run, and argument checks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

// Results do not depend on the thread count; one thread keeps the fused CPU
// AdamW kernel, which opens a parallel region for every tensor however small,
// from stalling for milliseconds a tensor on a busy machine.
et.setNumThreads(1);

const STEPS = 100;
const BETAS: [number, number] = [0.9, 0.95];
const EPS = 1e-8;
// A ViT in miniature: conv kernel, biases, LayerNorm weight, class token, position embedding, linear layers.
const SHAPES: [string, number[]][] = [
  ['patch_embed.proj.weight', [8, 3, 2, 2]],
  ['patch_embed.proj.bias', [8]],
  ['cls_token', [1, 1, 8]],
  ['pos_embed', [1, 5, 8]],
  ['blocks.0.norm1.weight', [8]],
  ['blocks.0.attn.qkv.weight', [24, 8]],
  ['blocks.0.attn.qkv.bias', [24]],
  ['head.weight', [4, 8]],
  ['head.bias', [4]],
];
// head.bias has no gradient at these steps: its state must not advance then.
const NO_GRAD: Record<string, number[]> = { 'head.bias': [0, 3, 10, 57] };
const LRS = Array.from({ length: STEPS }, (_, t) => et.warmupCosine(t + 1, { base: 1e-2, warmupSteps: 10, totalSteps: STEPS, final: 1e-4 }));
const WDS = Array.from({ length: STEPS }, (_, t) => et.cosine(t, STEPS, 0.1, 0.05));

const gen = et.Generator.create(7);
const init = new Map<string, Tensor>(SHAPES.map(([n, s]) => [n, et.randn(s, { generator: gen }).keep()]));
const grads = new Map<string, Tensor>(SHAPES.map(([n, s]) => [n, et.randn([STEPS, ...s], { generator: gen }).keep()]));
const frozen = et.randn([3]).keep(); // does not require grad: left out of the groups

// One Python run computes both references (torch takes seconds to import).
let oracle: Map<string, Tensor> | undefined;
function expected(kind: 'fused' | 'foreach'): (key: string) => Tensor {
  if (oracle === undefined) {
    const inputs: Record<string, Tensor> = {};
    const cases = (['fused', 'foreach'] as const).map((name) => {
      for (const [n] of SHAPES) {
        inputs[`${name}/p:${n}`] = init.get(n)!;
        inputs[`${name}/g:${n}`] = grads.get(n)!;
      }
      return { name, mode: 'adamw', names: SHAPES.map(([n]) => n), steps: STEPS, lrs: LRS, wds: WDS, betas: BETAS, eps: EPS, fused: name === 'fused', no_grad: NO_GRAD };
    });
    oracle = runOracle('optim_oracle.py', { cases }, inputs);
  }
  const out = oracle;
  return (key) => out.get(`${kind}/${key}`)!;
}

function makeParams(source: Map<string, Tensor> = init): [string, Tensor][] {
  return SHAPES.map(([n]) => [n, source.get(n)!.clone().requiresGrad_(true).keep()]);
}

function makeOptimizer(named: [string, Tensor][], fused: boolean): et.AdamW {
  const groups = et.paramGroupsForDecay([...named, ['frozen.weight', frozen]], { weightDecay: WDS[0]! });
  return new et.AdamW(groups, { lr: LRS[0]!, betas: BETAS, eps: EPS, fused });
}

function run(opt: et.AdamW, named: [string, Tensor][], from: number, to: number): void {
  for (let t = from; t < to; t++) {
    et.scope(() => {
      opt.setLr(LRS[t]!);
      opt.setWeightDecay(WDS[t]!);
      for (const [n, p] of named) p.grad = NO_GRAD[n]?.includes(t) ? null : grads.get(n)!.select(0, t).clone();
      opt.step();
    });
  }
}

/** The optimizer state by parameter name. */
function stateByName(opt: et.AdamW): Map<string, Tensor> {
  const names = opt.groups.flatMap((g) => g.names);
  const out = new Map<string, Tensor>();
  for (const [k, v] of opt.stateDict().state) {
    const [i, kind] = k.split('.') as [string, string];
    out.set(`${kind}:${names[Number(i)]}`, v);
  }
  return out;
}

test('paramGroupsForDecay: no decay for 1-D, *.bias, pos_embed, cls_token and skip(); frozen left out', () => {
  et.scope(() => {
    const named: [string, Tensor][] = [
      ['a.weight', et.zeros([2, 2], { requiresGrad: true })],
      ['a.bias', et.zeros([2], { requiresGrad: true })],
      ['norm.weight', et.zeros([2], { requiresGrad: true })],
      ['enc.pos_embed', et.zeros([1, 3, 2], { requiresGrad: true })],
      ['cls_token', et.zeros([1, 1, 2], { requiresGrad: true })],
      ['odd.bias', et.zeros([2, 2], { requiresGrad: true })],
      ['gamma_2d', et.zeros([2, 2], { requiresGrad: true })],
      ['frozen', et.zeros([2, 2])],
    ];
    const [decay, noDecay] = et.paramGroupsForDecay(named, { weightDecay: 0.05, skip: (n) => n.startsWith('gamma') });
    assert.deepEqual(decay.names, ['a.weight']);
    assert.equal(decay.weightDecay, 0.05);
    assert.deepEqual(noDecay.names, ['a.bias', 'norm.weight', 'enc.pos_embed', 'cls_token', 'odd.bias', 'gamma_2d']);
    assert.equal(noDecay.weightDecay, 0);
    assert.throws(() => et.paramGroupsForDecay([['x', 3 as unknown as Tensor]], { weightDecay: 0 }), /Expected a \[name, Tensor\] pair for "named\[0\]"/);
    assert.throws(() => et.paramGroupsForDecay(named, { weightDecay: -1 }), /non-negative finite number for "weightDecay"/);
  });
});

for (const fused of [true, false]) {
  test(`AdamW (${fused ? 'fused' : 'foreach'}) equals torch.optim.AdamW over ${STEPS} steps with changing lr and weight decay`, () => {
    const named = makeParams();
    const opt = makeOptimizer(named, fused);
    assert.equal(opt.implementation, fused ? 'fused' : 'foreach');
    assert.deepEqual(opt.groups.map((g) => g.names.length), [3, 6]);
    run(opt, named, 0, STEPS);
    const want = expected(fused ? 'fused' : 'foreach');
    const tol = { rtol: 1e-6, atol: 1e-7 };
    et.scope(() => {
      for (const [n, p] of named) assertClose(p.detach(), want(`p:${n}`), `param ${n}`, tol);
      const state = stateByName(opt);
      for (const [n] of named) {
        assertClose(state.get(`exp_avg:${n}`)!, want(`exp_avg:${n}`), `exp_avg ${n}`, tol);
        assertClose(state.get(`exp_avg_sq:${n}`)!, want(`exp_avg_sq:${n}`), `exp_avg_sq ${n}`, tol);
        assert.equal(state.get(`step:${n}`)!.item(), want(`step:${n}`).item(), `step ${n}`);
      }
      assert.equal(state.get('step:head.bias')!.item(), STEPS - NO_GRAD['head.bias']!.length);
    });
    opt.dispose();
    for (const [, p] of named) p.dispose();
  });

  test(`AdamW (${fused ? 'fused' : 'foreach'}): stateDict at step 50 through safetensors into a new optimizer ends bit-identical`, () => {
    const straight = makeParams();
    const a = makeOptimizer(straight, fused);
    run(a, straight, 0, STEPS);

    const first = makeParams();
    const b = makeOptimizer(first, fused);
    run(b, first, 0, 50);
    // What a checkpoint does: tensors to safetensors, groups as JSON metadata.
    const sd = b.stateDict();
    const bytes = et.serializeSafetensors(sd.state, { groups: JSON.stringify(sd.groups) });
    const weights = new Map(first.map(([n, p]) => [n, p.detach().clone().keep()]));
    b.dispose();
    for (const [, p] of first) p.dispose();

    const loaded = et.parseSafetensors(bytes);
    const resumed = makeParams(weights);
    const c = makeOptimizer(resumed, fused);
    c.setLr(123); // overwritten by the load
    c.loadStateDict({ state: loaded.tensors, groups: JSON.parse(loaded.metadata.groups!) });
    assert.equal(c.groups[0]!.lr, LRS[49]);
    run(c, resumed, 50, STEPS);
    et.scope(() => {
      for (let i = 0; i < straight.length; i++) {
        const [n, p] = straight[i]!;
        assert.deepEqual(resumed[i]![1].detach().toTypedArray(), p.detach().toTypedArray(), `param ${n}`);
      }
      const sa = a.stateDict().state;
      const sc = c.stateDict().state;
      assert.deepEqual([...sc.keys()].sort(), [...sa.keys()].sort());
      for (const [k, v] of sa) assert.deepEqual(sc.get(k)!.toTypedArray(), v.toTypedArray(), k);
    });
    for (const t of [...loaded.tensors.values(), ...weights.values()]) t.dispose();
    a.dispose();
    c.dispose();
  });
}

test('AdamW: setLr applies lrScale, setWeightDecay leaves no-decay groups at 0, zeroGrad, state freed by dispose', () => {
  et.scope(() => {
    const w = et.ones([2, 2], { requiresGrad: true });
    const b = et.ones([2], { requiresGrad: true });
    const opt = new et.AdamW([{ params: [w], lrScale: 0.5 }, { params: [b], weightDecay: 0 }], { lr: 1e-3 });
    opt.setLr(0.2);
    opt.setWeightDecay(0.3);
    assert.deepEqual(opt.groups.map((g) => [g.lr, g.weightDecay]), [[0.1, 0.3], [0.2, 0]]);
    assert.deepEqual(opt.parameters(), [w, b]);
    w.grad = et.onesLike(w);
    const live = et.memory().liveTensors;
    opt.step(); // b has no gradient: skipped, no state
    assert.deepEqual([...opt.stateDict().state.keys()], ['0.exp_avg', '0.exp_avg_sq', '0.step']);
    assert.equal(et.memory().liveTensors, live + 3 + 3, 'three state tensors plus the three stateDict handles');
    opt.zeroGrad();
    assert.equal(w.grad, null);
    opt.dispose();
    assert.throws(() => opt.step(), /has been disposed/);
  });
});

test('AdamW: float32 and float64 parameters in one group step in separate buckets; fused and foreach agree', () => {
  et.scope(() => {
    const results = [true, false].map((fused) => {
      const a = et.linspace(-1, 1, 6).reshape([2, 3]).requiresGrad_(true);
      const b = et.linspace(0, 1, 4, { dtype: 'float64' }).requiresGrad_(true);
      const opt = new et.AdamW([a, b], { lr: 0.05, fused });
      assert.equal(opt.implementation, fused ? 'fused' : 'foreach');
      for (let t = 0; t < 5; t++) {
        a.grad = a.detach().mul(t + 1);
        b.grad = b.detach().sub(t);
        opt.step();
      }
      opt.dispose();
      return [a.detach(), b.detach()];
    });
    assert.equal(results[0]![1]!.dtype, 'float64');
    assertClose(results[0]![0]!, results[1]![0]!, 'float32 param', { rtol: 1e-6, atol: 1e-7 });
    assertClose(results[0]![1]!, results[1]![1]!, 'float64 param', { rtol: 1e-12, atol: 1e-14 });
  });
});

test('AdamW: bad arguments and mismatched state dicts give clear errors', () => {
  et.scope(() => {
    const w = et.zeros([2, 3], { requiresGrad: true });
    const v = et.zeros([4], { requiresGrad: true });
    assert.throws(() => new et.AdamW([w, 3 as unknown as Tensor], { lr: 0.1 }), /Expected a Tensor for "groups\[0\]\.params\[1\] \("param1"\)" of AdamW but received number 3/);
    assert.throws(() => new et.AdamW([{ params: [w] }, 3 as unknown as et.ParamGroup], { lr: 0.1 }), /Expected a Tensor or a parameter group \{ params \} for "params\[1\]" of AdamW but received number 3/);
    assert.throws(() => new et.AdamW([{ params: [w, 'x' as unknown as Tensor] }], { lr: 0.1 }), /Expected a Tensor for "groups\[0\]\.params\[1\] \("param1"\)" of AdamW but received the string "x"/);
    assert.throws(() => new et.AdamW([w], { lr: 0 }), /Expected a positive finite number for "lr" of AdamW but received number 0/);
    assert.throws(() => new et.AdamW([w], { lr: NaN }), /"lr" of AdamW but received number NaN/);
    assert.throws(() => new et.AdamW([w], { lr: 0.1, betas: [0.9, 1] }), /Expected two numbers in \[0, 1\) for "betas" of AdamW but received \[0.9, 1\]/);
    assert.throws(() => new et.AdamW([w], { lr: 0.1, weightDecay: -0.1 }), /"weightDecay" of AdamW/);
    assert.throws(() => new et.AdamW([et.zeros([2])], { lr: 0.1 }), /does not require grad; leave frozen tensors out/);
    assert.throws(() => new et.AdamW([w, w], { lr: 0.1 }), /appears more than once/);
    assert.throws(() => new et.AdamW([], { lr: 0.1 }), /no parameters/);
    assert.throws(() => new et.AdamW([w], undefined as unknown as et.AdamWOptions), /Expected options \{ lr \} for AdamW/);
    const opt = new et.AdamW([{ params: [w], names: ['w'] }, { params: [v], names: ['v'] }], { lr: 0.1 });
    assert.throws(() => opt.setLr(-1), /non-negative finite number for "lr"/);
    opt.groups[0]!.lr = NaN;
    assert.throws(() => opt.step(), /"groups\[0\]\.lr" of AdamW but received number NaN/);
    opt.groups[0]!.lr = 0.1;
    w.grad = et.onesLike(w);
    v.grad = et.onesLike(v);
    opt.step();
    const sd = opt.stateDict();
    assert.throws(() => opt.loadStateDict({ state: sd.state, groups: sd.groups.slice(1) }), /has 1 groups but this optimizer has 2/);
    assert.throws(() => opt.loadStateDict({ state: sd.state, groups: [{ ...sd.groups[0]!, numParams: 5 }, sd.groups[1]!] }), /group 0 of the state dict has 5 parameters but this optimizer's has 1/);
    const bad = new Map(sd.state);
    bad.set('1.exp_avg', et.zeros([5]));
    assert.throws(() => opt.loadStateDict({ state: bad, groups: sd.groups }), /state "1.exp_avg" \(parameter "v"\) has shape \[5\] but expected \[4\]/);
    const missing = new Map(sd.state);
    missing.delete('0.exp_avg_sq');
    assert.throws(() => opt.loadStateDict({ state: missing, groups: sd.groups }), /parameter 0 \("w"\) has no "0.exp_avg_sq"/);
    assert.throws(() => opt.loadStateDict({ state: new Map([['2.step', et.zeros([])]]), groups: sd.groups }), /is for parameter 2 but this optimizer has 2 parameters/);
    assert.throws(() => opt.loadStateDict({ state: new Map([['0.momentum', et.zeros([])]]), groups: sd.groups }), /unexpected state key "0.momentum"/);
    // a failed load changes nothing
    assert.equal(opt.stateDict().state.get('0.step')!.item(), 1);
    opt.dispose();
  });
});
