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
import { ExtremaModel, type ExtremaConfigInput } from '../../lib/extrema';
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
