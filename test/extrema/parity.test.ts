// The encoder, heads, masked multi-view forward, losses and every student
// gradient, against an independent PyTorch implementation (test/oracle/
// extrema_ref.py) loaded with the same weights. The Python side loads the
// TypeScript state dict strictly, so the key names are checked too.
// Both sides run on EXTREMA_TEST_DEVICE (cpu by default). Weights, inputs and
// masks are drawn on the CPU from seeded generators first (sampleMasks draws
// on the model's device, where a CPU generator cannot), then moved there.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { ExtremaModel, momentumAt, type ExtremaConfigInput } from '../../lib/extrema';
import { pretrainParamGroups } from '../../lib/train/run-setup';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose, assertCloseToScale } from '../helpers/compare';
import { TEST_DEVICE, onTestDevice, skipUnlessDeviceAvailable } from '../helpers/device';

const TOL = { rtol: 1e-5, atol: 2e-6 };

function tinyConfig(over: ExtremaConfigInput['encoder'] = {}, rest: ExtremaConfigInput = {}): ExtremaConfigInput {
  return {
    encoder: { imgSize: 32, patchSize: 8, inChans: 3, embedDim: 32, depth: 2, numHeads: 4, ...over },
    projectorHiddenDim: 48, projectorDim: 16, predictorHiddenDim: 40,
    maskRatio: 0.75, numMasks: 2,
    ...rest,
  };
}

/** Moves every weight away from its structured init (zero biases, unit norms, 0.1 gammas) so nothing cancels by accident. */
function perturb(model: et.nn.Module, g: et.Generator): void {
  et.noGrad(() => {
    for (const [, p] of model.namedParameters()) {
      const noise = et.randn(p.shape, { generator: g }).mul(0.05);
      p.add_(noise);
      noise.dispose();
    }
  });
}

/**
 * The key bias of class attention has an exact gradient of 0 (softmax is
 * invariant to a constant added to one query's logits), so both sides hold
 * rounding noise there: check that it is noise, relative to the key weight's
 * gradient, instead of comparing two noises.
 */
function isZeroByInvariance(name: string): boolean {
  return /blocks_token\.\d+\.attn\.k\.bias$|^attn\.k\.bias$/.test(name);
}

function assertNoise(grad: Tensor, expected: Tensor, weightGrad: Tensor, what: string): void {
  const bound = 1e-5 * weightGrad.abs().max().item() + 1e-6;
  for (const [side, t] of [['TypeScript', grad], ['PyTorch', expected]] as const) {
    const worst = t.abs().max().item();
    assert.ok(worst <= bound, `${what} (${side}) should be rounding noise around 0 but has ${worst} > ${bound}`);
  }
}

function weightsOf(model: ExtremaModel): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of model.stateDict()) out[`w:${k}`] = v;
  return out;
}

function pooledModel(encoder: ExtremaConfigInput['encoder'], rest: ExtremaConfigInput = {}): { model: ExtremaModel; g: et.Generator } {
  const g = et.Generator.create(7);
  const model = new ExtremaModel(tinyConfig(encoder, rest), { seed: 3 });
  perturb(model, g);
  // Independent teacher weights, so a mix-up between student and teacher shows.
  perturb(model.momentum_encoder, g);
  return { model, g };
}

for (const [pooling, dtype] of [['class-attention', 'float32'], ['class-attention', 'float64'], ['class-token', 'float32'], ['mean', 'float32']] as const) {
  test(onTestDevice(`encoder (${pooling}, ${dtype}): features, projection, attention maps and gradients match PyTorch`), { skip: skipUnlessDeviceAvailable }, () => {
    et.scope(() => {
      const { model, g } = pooledModel({ pooling, classAttentionLayers: pooling === 'class-attention' ? 2 : 0 });
      const imagesCpu = et.randn([3, 3, 32, 32], { generator: g, dtype });
      const visible = model.sampleMasks(3, g).to(TEST_DEVICE);
      model.to({ device: TEST_DEVICE, dtype });
      const enc = model.base_encoder;
      const images = imagesCpu.to(TEST_DEVICE).requiresGrad_(true);
      const out = enc.encode(images, { visible });
      const projection = enc.project(out.instance);
      const r = { r_instance: et.randnLike(out.instance), r_tokens: et.randnLike(out.tokens), r_projection: et.randnLike(projection) };
      out.instance.mul(r.r_instance).sum().add(out.tokens.mul(r.r_tokens).sum()).add(projection.mul(r.r_projection).sum()).backward();
      const ref = runOracle('extrema_ref.py', { task: 'encoder', config: model.config, dtype, device: TEST_DEVICE }, { ...weightsOf(model), images: images.detach(), visible, ...r });
      assert.deepEqual(out.instance.shape, [6, 32], 'instance: 2 masks x 3 images');
      assert.deepEqual(out.tokens.shape, [6, 4, 32], 'tokens: 4 kept of 16 patches');
      const tol = dtype === 'float64' ? { rtol: 1e-10, atol: 1e-12 } : TOL;
      assertClose(out.instance.cpu(), ref.get('instance')!, 'instance', tol);
      assertClose(out.tokens.cpu(), ref.get('tokens')!, 'tokens', tol);
      assertClose(projection.cpu(), ref.get('projection')!, 'projection', tol);
      for (const block of [...enc.blocks.items.map((_, i) => `blocks.${i}`), ...enc.blocks_token.items.map((_, j) => `blocks_token.${j}`)]) {
        const a = et.noGrad(() => enc.encode(images, { visible, attentionOf: block }).attention!);
        assertClose(a.cpu(), ref.get(`attn:${block}`)!, `attention of ${block}`, tol);
      }
      // float64 proves the maths to 1e-10; float32 to 1e-5 of each tensor's scale.
      const close = (a: Tensor, e: Tensor, what: string) => (dtype === 'float64' ? assertClose(a.cpu(), e, what, { rtol: 1e-10, atol: 1e-12 }) : assertCloseToScale(a.cpu(), e, what, 1e-5));
      // On CUDA the images' gradient comes out of the patch convolution's
      // backward in cuDNN, which runs in TF32 by default on both sides (10-bit
      // mantissa) with algorithms picked per call: 2e-3 of scale there (seen:
      // 6e-5 of scale on an H200, mean pooling).
      if (TEST_DEVICE !== 'cpu' && dtype === 'float32') assertCloseToScale(images.grad!.cpu(), ref.get('grad:images')!, 'grad of images', 2e-3);
      else close(images.grad!, ref.get('grad:images')!, 'grad of images');
      let compared = 0;
      for (const [k, p] of enc.namedParameters('base_encoder')) {
        const expected = ref.get(`grad:${k}`);
        if (pooling === 'mean' && expected === undefined) continue;
        assert.ok(expected !== undefined, `PyTorch has a gradient for ${k}`);
        assert.ok(p.grad !== null, `TypeScript has a gradient for ${k}`);
        if (isZeroByInvariance(k)) assertNoise(p.grad!, expected, ref.get(`grad:${k.replace(/bias$/, 'weight')}`)!, `grad ${k}`);
        else close(p.grad!, expected, `grad ${k}`);
        compared++;
      }
      assert.ok(compared >= enc.parameters().length - 1, `compared ${compared} gradients`);
      model.dispose();
    });
  });
}

for (const loss of ['byol', 'infonce'] as const) {
  test(onTestDevice(`ExtreMA step (${loss}, 75% x 2 disjoint masks): loss, predictions, targets and every student gradient match PyTorch`), { skip: skipUnlessDeviceAvailable }, () => {
    et.scope(() => {
      const { model, g } = pooledModel({}, { loss, temperature: 0.2 });
      const student = et.randn([4, 3, 32, 32], { generator: g }).to(TEST_DEVICE);
      const teacher = et.randn([4, 3, 32, 32], { generator: g }).to(TEST_DEVICE);
      const visible = model.sampleMasks(4, g).to(TEST_DEVICE);
      model.to({ device: TEST_DEVICE });
      const out = model.forward(student, teacher, { visible });
      out.loss.backward();
      const ref = runOracle('extrema_ref.py', { task: 'extrema', config: model.config, device: TEST_DEVICE }, { ...weightsOf(model), student, teacher, visible });
      assertClose(out.loss.reshape(1).cpu(), ref.get('loss')!, 'loss', TOL);
      assertClose(out.predictions.cpu(), ref.get('predictions')!, 'predictions', TOL);
      assertClose(out.targets.cpu(), ref.get('targets')!, 'targets', TOL);
      const names = model.studentParameters();
      assert.equal(names.length, model.base_encoder.parameters().length + model.predictor.parameters().length);
      for (const [k, p] of names) {
        if (isZeroByInvariance(k)) assertNoise(p.grad!, ref.get(`grad:${k}`)!, ref.get(`grad:${k.replace(/bias$/, 'weight')}`)!, `grad ${k}`);
        else assertClose(p.grad!.cpu(), ref.get(`grad:${k}`)!, `grad ${k}`, { rtol: 1e-5, atol: 5e-6 });
      }
      for (const p of model.momentum_encoder.parameters()) assert.equal(p.grad, null, 'the teacher gets no gradient');
      model.dispose();
    });
  });
}

test(onTestDevice('ExtreMA step with BatchNorm heads (train mode, batch statistics): loss, targets, gradients and running statistics match PyTorch'), { skip: skipUnlessDeviceAvailable }, () => {
  et.scope(() => {
    const { model, g } = pooledModel({}, { headNorm: 'batch' });
    const student = et.randn([4, 3, 32, 32], { generator: g }).to(TEST_DEVICE);
    const teacher = et.randn([4, 3, 32, 32], { generator: g }).to(TEST_DEVICE);
    const visible = model.sampleMasks(4, g).to(TEST_DEVICE);
    model.to({ device: TEST_DEVICE });
    // The forward moves the running statistics in place: send PyTorch the state from before it.
    const before = Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v.clone()]));
    assert.ok('w:momentum_encoder.head.1.running_mean' in before && 'w:predictor.1.running_var' in before, 'BatchNorm buffers are in the state dict under torch\'s names');
    assert.ok(model.training, 'a new model is in train mode');
    const out = model.forward(student, teacher, { visible });
    out.loss.backward();
    const ref = runOracle('extrema_ref.py', { task: 'extrema', config: model.config, device: TEST_DEVICE }, { ...before, student, teacher, visible });
    assertClose(out.loss.reshape(1).cpu(), ref.get('loss')!, 'loss', TOL);
    assertClose(out.predictions.cpu(), ref.get('predictions')!, 'predictions', TOL);
    assertClose(out.targets.cpu(), ref.get('targets')!, 'targets', TOL);
    for (const [k, p] of model.studentParameters()) {
      if (isZeroByInvariance(k)) assertNoise(p.grad!, ref.get(`grad:${k}`)!, ref.get(`grad:${k.replace(/bias$/, 'weight')}`)!, `grad ${k}`);
      else assertCloseToScale(p.grad!.cpu(), ref.get(`grad:${k}`)!, `grad ${k}`, 1e-5);
    }
    let buffers = 0;
    for (const [k, v] of model.stateDict()) {
      if (!/running_|num_batches/.test(k)) continue;
      const expected = ref.get(`buffer:${k}`);
      assert.ok(expected !== undefined, `PyTorch has the buffer ${k}`);
      if (k.endsWith('num_batches_tracked')) assert.equal(v.item(), expected.item(), k);
      else assertCloseToScale(v.cpu(), expected, k, 1e-5);
      buffers++;
    }
    // projector: 2 BatchNorms x 2 encoders, predictor: 1; 3 buffers each
    assert.equal(buffers, 15);
    for (const p of model.momentum_encoder.parameters()) assert.equal(p.grad, null, 'the teacher gets no gradient');
    model.dispose();
  });
});

test('momentum schedule: constant stays at the base, cosine rises from it to 1', () => {
  for (const t of [0, 0.3, 2.5, 4]) assert.equal(momentumAt(t, 4, 0.99, 'constant'), 0.99);
  assert.equal(momentumAt(0, 4, 0.99, 'cosine'), 0.99);
  assert.equal(momentumAt(4, 4, 0.99), 1, 'cosine is the default');
  assert.throws(() => momentumAt(1, 4, 0.99, 'linear' as never), /Expected one of cosine, constant for "schedule" of momentumAt but received/);
});

test(onTestDevice('AdamW with the predictor at 10x lr and a constant EMA momentum: 4 steps follow PyTorch'), { skip: skipUnlessDeviceAvailable }, () => {
  et.scope(() => {
    const steps = 4;
    const cfg = { weightDecay: 0.1, predictorLrScale: 10 };
    const lrs = [2e-4, 5e-4, 1e-3, 7e-4];
    const { model, g } = pooledModel({}, { momentumSchedule: 'constant', momentum: 0.9 });
    const students = et.randn([steps, 4, 3, 32, 32], { generator: g });
    const teachers = students.add(et.randn([steps, 4, 3, 32, 32], { generator: g }).mul(0.3));
    const visibles = et.stack(Array.from({ length: steps }, () => model.sampleMasks(4, g)));
    model.to({ device: TEST_DEVICE });
    const initial = Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v.clone()]));
    const groups = pretrainParamGroups(model, cfg);
    assert.deepEqual(groups.map((gr) => gr.lrScale ?? 1), [1, 10, 1, 10], '[decay, noDecay] x [others, predictor]');
    assert.ok(groups[1]!.names!.length > 0 && groups[1]!.names!.every((n) => n.startsWith('predictor.')));
    assert.equal(pretrainParamGroups(model, { ...cfg, predictorLrScale: 1 }).length, 2, 'scale 1 keeps the two groups of earlier checkpoints');
    const opt = new et.AdamW(groups, { lr: lrs[0]!, betas: [0.9, 0.95], weightDecay: cfg.weightDecay });
    const momenta = lrs.map((_, t) => momentumAt(t, steps, model.config.momentum, model.config.momentumSchedule));
    assert.deepEqual(momenta, [0.9, 0.9, 0.9, 0.9]);
    const losses: number[] = [];
    for (let t = 0; t < steps; t++) {
      et.scope(() => {
        opt.setLr(lrs[t]!);
        assert.ok(Math.abs(opt.groups[1]!.lr - 10 * lrs[t]!) < 1e-15, 'setLr keeps the predictor\'s ratio');
        const out = model.forward(students.select(0, t).to(TEST_DEVICE), teachers.select(0, t).to(TEST_DEVICE), { visible: visibles.select(0, t).to(TEST_DEVICE) });
        out.loss.backward();
        losses.push(out.loss.item());
        opt.step();
        model.zeroGrad();
        model.updateTeacher(momenta[t]!);
      });
    }
    const ref = runOracle('extrema_ref.py', { task: 'train_adamw', config: model.config, lrs, momenta, predictor_lr_scale: cfg.predictorLrScale, weight_decay: cfg.weightDecay, betas: [0.9, 0.95], device: TEST_DEVICE },
      { ...initial, students, teachers, visibles });
    const expected = Array.from(ref.get('losses')!.toTypedArray<'float32'>());
    losses.forEach((l, t) => assert.ok(Math.abs(l - expected[t]!) < 2e-5 * Math.max(1, Math.abs(expected[t]!)), `step ${t}: loss ${l} vs PyTorch ${expected[t]}`));
    // Key biases have a gradient of exactly 0 (see isZeroByInvariance) and Adam
    // scales the rounding noise both sides hold there up to steps of about lr:
    // those entries only have to stay within the steps' total lr of each other.
    const noiseBound = 2 * lrs.reduce((x, y) => x + y, 0);
    const width = model.config.encoder.embedDim;
    for (const [k, v] of model.stateDict()) {
      const e = ref.get(`final:${k}`)!;
      if (/blocks\.\d+\.attn\.qkv\.bias$/.test(k)) {
        for (const [lo, what] of [[0, 'q'], [2 * width, 'v']] as const) assertCloseToScale(v.narrow(0, lo, width).cpu(), e.narrow(0, lo, width), `final ${k} (${what})`, 1e-4);
        assertClose(v.narrow(0, width, width).cpu(), e.narrow(0, width, width), `final ${k} (k: Adam on rounding noise)`, { rtol: 0, atol: noiseBound });
      } else if (/blocks_token\.\d+\.attn\.k\.bias$/.test(k)) assertClose(v.cpu(), e, `final ${k} (Adam on rounding noise)`, { rtol: 0, atol: noiseBound });
      else assertCloseToScale(v.cpu(), e, `final ${k}`, 1e-4);
    }
    opt.dispose();
    model.dispose();
  });
});

test(onTestDevice('BatchNorm heads, 3 SGD + constant-momentum EMA steps: weights and running statistics follow PyTorch; the teacher keeps its own'), { skip: skipUnlessDeviceAvailable }, () => {
  et.scope(() => {
    const steps = 3;
    const lr = 0.05;
    const { model, g } = pooledModel({}, { headNorm: 'batch', momentumSchedule: 'constant', momentum: 0.9 });
    const students = et.randn([steps, 4, 3, 32, 32], { generator: g });
    const teachers = students.add(et.randn([steps, 4, 3, 32, 32], { generator: g }).mul(0.3));
    const visibles = et.stack(Array.from({ length: steps }, () => model.sampleMasks(4, g)));
    model.to({ device: TEST_DEVICE });
    const initial = Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v.clone()]));
    const momenta = Array.from({ length: steps }, (_, t) => momentumAt(t, steps, model.config.momentum, model.config.momentumSchedule));
    const params = model.studentParameters().map(([, p]) => p);
    const losses: number[] = [];
    for (let t = 0; t < steps; t++) {
      et.scope(() => {
        const out = model.forward(students.select(0, t).to(TEST_DEVICE), teachers.select(0, t).to(TEST_DEVICE), { visible: visibles.select(0, t).to(TEST_DEVICE) });
        out.loss.backward();
        losses.push(out.loss.item());
        et.noGrad(() => {
          for (const p of params) {
            p.sub_(p.grad!, lr);
            p.grad = null;
          }
        });
        model.updateTeacher(momenta[t]!);
      });
    }
    const ref = runOracle('extrema_ref.py', { task: 'train_sgd', config: model.config, lr, momenta, device: TEST_DEVICE }, { ...initial, students, teachers, visibles });
    const expected = Array.from(ref.get('losses')!.toTypedArray<'float32'>());
    losses.forEach((l, t) => assert.ok(Math.abs(l - expected[t]!) < 2e-5 * Math.max(1, Math.abs(expected[t]!)), `step ${t}: loss ${l} vs PyTorch ${expected[t]}`));
    const state = model.stateDict();
    for (const [k, v] of state) {
      const e = ref.get(`final:${k}`)!;
      if (k.endsWith('num_batches_tracked')) assert.equal(v.item(), e.item(), k);
      else assertCloseToScale(v.cpu(), e, `final ${k}`, 1e-4);
    }
    assert.equal(state.get('momentum_encoder.head.1.num_batches_tracked')!.item(), steps);
    const gap = state.get('momentum_encoder.head.1.running_mean')!.sub(state.get('base_encoder.head.1.running_mean')!).abs().max().item();
    assert.ok(gap > 0, 'teacher and student running statistics differ (the EMA leaves buffers alone)');
    model.dispose();
  });
});

test(onTestDevice('position embedding equals the 2-D sin-cos table computed in PyTorch'), { skip: skipUnlessDeviceAvailable }, () => {
  et.scope(() => {
    const cfg = { encoder: { imgSize: [48, 32] as [number, number], patchSize: 8, embedDim: 24, depth: 0, numHeads: 2 }, projectorHiddenDim: 8, predictorHiddenDim: 8 };
    const model = new ExtremaModel({ ...cfg, maskRatio: 0.5 }, { seed: 1 });
    model.to({ device: TEST_DEVICE });
    const ref = runOracle('extrema_ref.py', { task: 'posembed', config: model.config, device: TEST_DEVICE }, weightsOf(model));
    assertClose(model.base_encoder.pos_embed.cpu(), ref.get('pos_embed')!, 'pos_embed', { rtol: 0, atol: 1e-7 });
    model.dispose();
  });
});

test(onTestDevice('a class-attention block alone: new class token and gradients of patches, class token and every weight match PyTorch'), { skip: skipUnlessDeviceAvailable }, () => {
  et.scope(() => {
    const { model, g } = pooledModel({});
    model.to({ device: TEST_DEVICE });
    const block = model.base_encoder.blocks_token.items[0]!;
    const x = et.randn([3, 16, 32], { generator: g }).to(TEST_DEVICE).requiresGrad_(true);
    const cls = et.randn([3, 1, 32], { generator: g }).to(TEST_DEVICE).requiresGrad_(true);
    const y = block.forward(x, cls);
    const r = et.randnLike(y);
    y.mul(r).sum().backward();
    const ref = runOracle('extrema_ref.py', { task: 'ca_block', config: model.config, device: TEST_DEVICE }, { ...weightsOf(model), x: x.detach(), cls: cls.detach(), r });
    assert.deepEqual(y.shape, [3, 1, 32], 'only the class token comes out');
    assertClose(y.cpu(), ref.get('out')!, 'class token', TOL);
    assertCloseToScale(x.grad!.cpu(), ref.get('grad:x')!, 'grad of patch tokens');
    assertCloseToScale(cls.grad!.cpu(), ref.get('grad:cls')!, 'grad of class token');
    for (const [k, p] of block.namedParameters()) {
      if (isZeroByInvariance(k)) assertNoise(p.grad!, ref.get(`grad:${k}`)!, ref.get('grad:attn.k.weight')!, `grad ${k}`);
      else assertCloseToScale(p.grad!.cpu(), ref.get(`grad:${k}`)!, `grad ${k}`);
    }
    model.dispose();
  });
});
