// clipGradNorm against torch.nn.utils.clip_grad_norm_, GradScaler against
// torch.amp.GradScaler driving AdamW through inf and NaN steps (on
// EXTREMA_TEST_DEVICE: the CPU, or CUDA on a GPU machine).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';
import { TEST_DEVICE, onTestDevice, skipUnlessDeviceAvailable } from '../helpers/device';

// Results do not depend on the thread count; one thread keeps the fused CPU
// AdamW kernel, which opens a parallel region for every tensor however small,
// from stalling for milliseconds a tensor on a busy machine.
et.setNumThreads(1);

const gen = et.Generator.create(11);

const CLIP_SHAPES = [[5, 4], [3], [2, 2, 2], [6]];
const WITH_GRAD = [0, 1, 3]; // parameter 2 has no gradient
const clipGrads = new Map<number, Tensor>(WITH_GRAD.map((i) => [i, et.randn(CLIP_SHAPES[i]!, { generator: gen }).mul(0.7).keep()]));

const CLIP_CASES = [[1, 2, 'clips'], [1e3, 2, 'no-clip'], [0.5, Infinity, 'inf-norm']] as const;

const T = 10;
const X = et.randn([T, 6, 4], { generator: gen }).keep();
et.noGrad(() => {
  X.select(0, 4).select(0, 0).fill_(1e30); // overflows the loss: inf gradients
  X.select(0, 5).select(0, 2).fill_(NaN); // NaN gradients
});
const W0 = et.randn([4, 3], { generator: gen }).keep();
const B0 = et.randn([3], { generator: gen }).keep();
const UNSCALE_AT = [1, 7];

// One Python run computes every reference of this file (torch takes seconds to import).
let oracle: Map<string, Tensor> | undefined;
function expected(name: string): (key: string) => Tensor {
  if (oracle === undefined) {
    const inputs: Record<string, Tensor> = { 'scaler/x': X, 'scaler/w': W0, 'scaler/b': B0 };
    for (const [, , c] of CLIP_CASES) for (const i of WITH_GRAD) inputs[`${c}/g:${i}`] = clipGrads.get(i)!;
    oracle = runOracle('optim_oracle.py', {
      cases: [
        ...CLIP_CASES.map(([maxNorm, normType, c]) => ({ name: c, mode: 'clip', shapes: CLIP_SHAPES, max_norm: maxNorm, norm_type: normType === Infinity ? 'inf' : normType })),
        { name: 'scaler', mode: 'scaler', device: skipUnlessDeviceAvailable === false ? TEST_DEVICE : 'cpu', init_scale: 1024, growth_interval: 3, lr: 0.01, unscale_at: UNSCALE_AT },
      ],
    }, inputs);
  }
  const out = oracle;
  return (key) => out.get(`${name}/${key}`)!;
}

for (const [maxNorm, normType, what] of CLIP_CASES) {
  test(`clipGradNorm equals clip_grad_norm_ (${what}: maxNorm ${maxNorm}, norm ${normType})`, () => {
    const want = expected(what);
    et.scope(() => {
      const params = CLIP_SHAPES.map((s, i) => {
        const p = et.zeros(s, { requiresGrad: true });
        if (clipGrads.has(i)) p.grad = clipGrads.get(i)!.clone();
        return p;
      });
      const norm = et.clipGradNorm(params, maxNorm, normType);
      assert.equal(norm, want('norm').item(), 'total norm');
      for (const i of WITH_GRAD) assertClose(params[i]!.grad!, want(`g:${i}`), `grad ${i}`, { rtol: 0, atol: 0 });
      assert.equal(params[2]!.grad, null);
      if (maxNorm > norm) assert.deepEqual(params[0]!.grad!.toTypedArray(), clipGrads.get(0)!.toTypedArray(), 'unchanged below maxNorm');
    });
  });
}

test('clipGradNorm: no gradients gives 0; bad arguments are errors', () => {
  et.scope(() => {
    assert.equal(et.clipGradNorm([et.zeros([2], { requiresGrad: true })], 1), 0);
    assert.equal(et.clipGradNorm([], 1), 0);
    assert.throws(() => et.clipGradNorm([3 as unknown as Tensor], 1), /Expected a Tensor for "params\[0\]" of clipGradNorm but received number 3/);
    assert.throws(() => et.clipGradNorm([], -1), /non-negative number for "maxNorm"/);
    assert.throws(() => et.clipGradNorm([], 1, 0), /positive number \(or Infinity\) for "normType"/);
  });
});

test(onTestDevice('GradScaler equals torch.amp.GradScaler: inf/NaN steps skipped with backoff, growth every growthInterval clean steps'), { skip: skipUnlessDeviceAvailable }, () => {
  const want = expected('scaler');
  const w = W0.to(TEST_DEVICE).clone().requiresGrad_(true).keep();
  const b = B0.to(TEST_DEVICE).clone().requiresGrad_(true).keep();
  const x = X.to(TEST_DEVICE).keep();
  const opt = new et.AdamW([w, b], { lr: 0.01 });
  const scaler = new et.GradScaler({ initScale: 1024, growthInterval: 3 });
  assert.equal(scaler.getScale(), 1024);
  const scales: number[] = [];
  const trackers: number[] = [];
  const stepped: number[] = [];
  const norms: number[] = [];
  for (let t = 0; t < T; t++) {
    et.scope(() => {
      const loss = x.select(0, t).matmul(w).add(b).pow(2).mean();
      const scaled = scaler.scale(loss);
      assert.equal(scaled.item(), Number.isFinite(loss.item()) ? Math.fround(loss.item() * scaler.getScale()) : scaled.item());
      scaled.backward();
      if (UNSCALE_AT.includes(t)) {
        scaler.unscale(opt);
        norms.push(et.clipGradNorm([w, b], 1));
      }
      stepped.push(scaler.step(opt) ? 1 : 0);
      scaler.update();
      scales.push(scaler.getScale());
      trackers.push(scaler.growthTracker);
      opt.zeroGrad();
    });
  }
  assert.deepEqual(scales, [1024, 1024, 2048, 2048, 1024, 512, 512, 512, 1024, 1024]);
  assert.deepEqual(stepped, [1, 1, 1, 1, 0, 0, 1, 1, 1, 1]);
  assert.deepEqual(scales, Array.from(want('scales').toTypedArray() as Float64Array));
  assert.deepEqual(trackers, Array.from(want('trackers').toTypedArray() as Float64Array));
  assert.deepEqual(stepped, Array.from(want('stepped').toTypedArray() as Float64Array));
  const pyNorms = Array.from(want('norms').toTypedArray() as Float64Array);
  norms.forEach((n, i) => assert.ok(Math.abs(n - pyNorms[i]!) <= 1e-5 * pyNorms[i]!, `norm ${i}: ${n} vs ${pyNorms[i]}`));
  et.scope(() => {
    assertClose(w.detach().cpu(), want('w'), 'w', { rtol: 1e-5, atol: 1e-6 });
    assertClose(b.detach().cpu(), want('b'), 'b', { rtol: 1e-5, atol: 1e-6 });
  });

  // A checkpointed scaler continues where it stopped.
  const sd = scaler.stateDict();
  assert.deepEqual(sd, { scale: 1024, growthTracker: 1, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3 });
  const again = new et.GradScaler();
  again.loadStateDict(JSON.parse(JSON.stringify(sd)));
  assert.deepEqual(again.stateDict(), sd);
  for (const s of [scaler, again]) {
    et.scope(() => {
      s.scale(et.tensor(1, { device: TEST_DEVICE })); // creates the scale tensor from the loaded state
      b.grad = et.onesLike(b);
      s.unscale([w, b]);
      s.update();
    });
  }
  assert.deepEqual(again.stateDict(), scaler.stateDict());
  assert.equal(again.growthTracker, 2);
  opt.dispose();
  scaler.dispose();
  again.dispose();
  w.dispose();
  b.dispose();
  x.dispose();
});

test('GradScaler: disabled passes through; misuse and bad options are errors', () => {
  et.scope(() => {
    const p = et.ones([2], { requiresGrad: true });
    const opt = new et.AdamW([p], { lr: 0.1 });
    const off = new et.GradScaler({ enabled: false });
    const loss = et.tensor(3);
    assert.equal(off.scale(loss), loss);
    p.grad = et.full([2], Infinity);
    assert.equal(off.step(opt), true, 'disabled: steps even on inf');
    off.update();
    assert.equal(off.getScale(), 1);

    const s = new et.GradScaler();
    assert.throws(() => s.update(), /before any scale\(loss\)/);
    s.scale(loss);
    assert.throws(() => s.update(), /no inf checks were recorded/);
    p.grad = et.onesLike(p);
    s.unscale(opt);
    assert.throws(() => s.unscale(opt), /already been called on this optimizer since the last update/);
    s.step(opt);
    assert.throws(() => s.step(opt), /step\(\) has already been called since the last update/);
    assert.throws(() => s.unscale(opt), /after step\(\)/);
    s.update();
    s.scale(loss);
    p.grad = et.onesLike(p);
    s.unscale([p]);
    assert.throws(() => s.step(opt), /parameter 0 was already unscaled since the last update\(\) \(through another unscale\(\) target\)/);
    s.update();
    assert.throws(() => s.step({} as et.optim.ScalableOptimizer), /Expected an optimizer \(with step\(\) and parameters\(\)\)/);
    const half = et.ones([2], { dtype: 'float16', requiresGrad: true });
    half.grad = et.ones([2], { dtype: 'float16' });
    assert.throws(() => s.unscale([half]), /cannot unscale float16 gradients/);
    assert.throws(() => new et.GradScaler({ growthFactor: 1 }), /above 1 for "growthFactor"/);
    assert.throws(() => new et.GradScaler({ backoffFactor: 1 }), /in \(0, 1\) for "backoffFactor"/);
    assert.throws(() => new et.GradScaler({ growthInterval: 0.5 }), /positive integer for "growthInterval"/);
    assert.throws(() => new et.GradScaler({ initScale: -1 }), /positive finite number for "initScale"/);
    assert.throws(() => s.loadStateDict({ scale: 1, growthTracker: -1, growthFactor: 2, backoffFactor: 0.5, growthInterval: 1 }), /"growthTracker"/);
    opt.dispose();
    s.dispose();
  });
});
