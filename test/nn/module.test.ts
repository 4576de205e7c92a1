// Module mechanics: state-dict names (the authors' keys), strict loading,
// device/dtype moves, modes, initialisation, config validation and errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { ExtremaModel } from '../../lib/extrema';

const { VisionTransformer, vitConfig, StateDictError, DropPath } = et.nn;

function small(): et.nn.VisionTransformer {
  return new VisionTransformer({ imgSize: 32, patchSize: 8, embedDim: 32, depth: 2, numHeads: 4 }, { seed: 1 });
}

// The key families of the authors' checkpoints (shared/reference/official-implementation.md).
const AUTHORS_KEYS = [
  /^(base_encoder|momentum_encoder)\.(cls_token|pos_embed)$/,
  /^(base_encoder|momentum_encoder)\.patch_embed\.proj\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks\.\d+\.(norm1|norm2)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks\.\d+\.attn\.(qkv|proj)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks\.\d+\.mlp\.(fc1|fc2)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks_token\.\d+\.(gamma_1|gamma_2)$/,
  /^(base_encoder|momentum_encoder)\.blocks_token\.\d+\.(norm1|norm2)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks_token\.\d+\.attn\.(q|k|v|proj)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.blocks_token\.\d+\.mlp\.(fc1|fc2)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.norm\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.head\.(0|3|6)\.(weight|bias)$/,
  /^(base_encoder|momentum_encoder)\.head\.(1|4)\.(weight|bias)$/,
  /^predictor\.(0|3|1)\.(weight|bias)$/,
];

test('the ExtreMA state dict uses exactly the authors\' key names, and every family of them', () => {
  const model = new ExtremaModel({ encoder: { imgSize: 32, patchSize: 8, embedDim: 32, depth: 2, numHeads: 4 }, projectorHiddenDim: 16, projectorDim: 8, predictorHiddenDim: 16 }, { seed: 1 });
  const keys = [...model.stateDict().keys()];
  for (const k of keys) assert.ok(AUTHORS_KEYS.some((re) => re.test(k)), `unexpected key ${k}`);
  for (const re of AUTHORS_KEYS) assert.ok(keys.some((k) => re.test(k)), `no key matches ${re}`);
  // per encoder: cls+pos, patch conv, 2 blocks x 12, 2 class blocks x 18, norm, 3 Linear + 2 LN in the head; predictor 2 Linear + 1 LN
  assert.equal(keys.length, 2 * (2 + 2 + 2 * 12 + 2 * 18 + 2 + 10) + 6);
  model.dispose();
});

test('loadStateDict is strict: it lists missing, unexpected and mis-shaped keys and changes nothing', () => {
  et.scope(() => {
    const a = small();
    const b = new VisionTransformer({ imgSize: 32, patchSize: 8, embedDim: 32, depth: 2, numHeads: 4 }, { seed: 2 });
    const before = a.norm.weight.clone();
    const sd = new Map(b.stateDict());
    sd.delete('blocks.1.attn.qkv.weight');
    sd.set('blocks.9.extra', et.zeros([1]));
    sd.set('norm.weight', et.zeros([3]));
    assert.throws(() => a.loadStateDict(sd), (e: Error) => {
      assert.ok(e instanceof StateDictError);
      assert.match(e.message, /norm\.weight: expected shape \[32\] but received \[3\]/);
      assert.match(e.message, /missing keys \(1\): blocks\.1\.attn\.qkv\.weight/);
      assert.match(e.message, /unexpected keys \(1\): blocks\.9\.extra/);
      return true;
    });
    assert.equal(a.norm.weight.sub(before).abs().max().item(), 0, 'nothing was copied');
    sd.set('norm.weight', b.norm.weight);
    const r = a.loadStateDict(sd, { strict: false });
    assert.deepEqual(r, { missing: ['blocks.1.attn.qkv.weight'], unexpected: ['blocks.9.extra'] });
    assert.equal(a.blocks.items[0]!.attn.qkv.weight.sub(b.blocks.items[0]!.attn.qkv.weight).abs().max().item(), 0, 'the rest was loaded');
    a.dispose();
    b.dispose();
  });
});

test('to(float64) replaces every tensor and the fields that point at them; forward still works', () => {
  et.scope(() => {
    const v = small();
    const old = v.cls_token!;
    v.to({ dtype: 'float64' });
    assert.equal(old.isDisposed, true, 'the float32 tensor was freed');
    assert.equal(v.cls_token!.dtype, 'float64');
    assert.equal(v.blocks.items[1]!.mlp.fc2.weight.dtype, 'float64');
    assert.equal(v.pos_embed.dtype, 'float64');
    assert.equal(v.blocks.items[1]!.mlp.fc2.weight.requiresGrad, true);
    assert.ok(v.stateDict().get('cls_token') === v.cls_token, 'state dict and field agree');
    const out = v.encode(et.randn([2, 3, 32, 32], { dtype: 'float64' }));
    assert.equal(out.instance.dtype, 'float64');
    v.dispose();
  });
});

test('initialisation follows the authors: xavier Linear with zero bias, patch conv as 2-D, cls std 0.02, gamma 0.1', () => {
  et.scope(() => {
    const v = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 96, depth: 2, numHeads: 4 }, { seed: 3 });
    const qkv = v.blocks.items[0]!.attn.qkv.weight;
    const bound = Math.sqrt(6 / (96 + 288));
    assert.ok(qkv.abs().max().item() <= bound + 1e-7);
    assert.ok(Math.abs(qkv.std().item() - bound / Math.sqrt(3)) < 0.01 * bound / Math.sqrt(3) * 5);
    assert.equal(v.blocks.items[0]!.attn.qkv.bias!.abs().max().item(), 0);
    const conv = v.patch_embed.proj.weight;
    const convBound = Math.sqrt(6 / (3 * 64 + 96));
    assert.ok(conv.abs().max().item() <= convBound + 1e-7 && conv.abs().max().item() > 0.9 * convBound);
    assert.ok(Math.abs(v.cls_token!.std().item() - 0.02) < 0.01);
    assert.deepEqual(new Set(v.blocks_token.items[1]!.gamma_2.toTypedArray<'float32'>()), new Set([Math.fround(0.1)]));
    assert.deepEqual(new Set(v.norm.weight.toTypedArray<'float32'>()), new Set([1]));
    const again = new VisionTransformer({ imgSize: 64, patchSize: 8, embedDim: 96, depth: 2, numHeads: 4 }, { seed: 3 });
    assert.equal(again.blocks.items[1]!.mlp.fc1.weight.sub(v.blocks.items[1]!.mlp.fc1.weight).abs().max().item(), 0, 'same seed, same weights');
    v.dispose();
    again.dispose();
  });
});

test('drop path zeroes whole samples in training and nothing in eval', () => {
  et.scope(() => {
    et.manualSeed(5);
    const dp = new DropPath(0.5);
    const y = dp.forward(et.ones([2000, 3]));
    const rows = y.toArray() as number[][];
    assert.ok(rows.every((r) => (r[0] === 0 || r[0] === 2) && r.every((x) => x === r[0])));
    const kept = rows.filter((r) => r[0] === 2).length;
    assert.ok(kept > 900 && kept < 1100, `${kept} of 2000 kept`);
    dp.eval();
    assert.equal(dp.forward(et.ones([5, 3])).sum().item(), 15);
  });
});

test('presets, custom sizes and config errors that name the field', () => {
  assert.deepEqual(vitConfig({ preset: 'tiny' }), { ...vitConfig(), embedDim: 192, depth: 12, numHeads: 3 });
  assert.equal(vitConfig({ preset: 'small' }).embedDim, 384);
  assert.equal(vitConfig({ preset: 'large' }).depth, 24);
  assert.deepEqual(vitConfig({ imgSize: 28, patchSize: 4, inChans: 1 }).imgSize, [28, 28]);
  assert.throws(() => vitConfig({ preset: 'huge' as never }), /one of tiny, small, base, large for "preset"/);
  assert.throws(() => vitConfig({ embedDim: 100, numHeads: 3 }), /embedDim 100 is not divisible by numHeads 3/);
  assert.throws(() => vitConfig({ imgSize: 30, patchSize: 4 }), /image size 30x30 is not divisible by patchSize 4/);
  assert.throws(() => vitConfig({ pooling: 'mean', classAttentionLayers: 2 }), /pooling "mean" has no class-attention blocks/);
  assert.throws(() => vitConfig({ pooling: 'class-attention', classAttentionLayers: 0 }), /needs classAttentionLayers >= 1/);
  assert.throws(() => vitConfig({ depht: 3 } as never), /Unknown ViT config field "depht"/);
  assert.throws(() => vitConfig({ dropPathRate: 1 }), /\[0, 1\) for ViT config "dropPathRate"/);
  assert.throws(() => new ExtremaModel({ lossType: 'x' } as never), /Unknown ExtreMA config field "lossType"/);
  assert.throws(() => new ExtremaModel({ loss: 'mse' as never }), /"byol" or "infonce"/);
});

test('bad inputs: image shape, attention block name, disposed weights', () => {
  et.scope(() => {
    const v = small();
    assert.throws(() => v.encode(et.randn([2, 1, 32, 32])), /Expected images of shape \[B, 3, 32, 32\] but received \[2, 1, 32, 32\]/);
    assert.throws(() => v.encode(et.randn([2, 3, 28, 28])), /Expected images of shape \[B, 3, 32, 32\]/);
    assert.throws(() => v.encode(et.randn([2, 3, 32, 32]), { attentionOf: 'blocks.7' }), /this encoder has 2 blocks and 2 class-attention blocks/);
    assert.throws(() => v.encode(et.randn([2, 3, 32, 32]), { visible: et.zeros([2, 1, 4]) }), /Expected int64 patch indices of shape \[2, masks, kept\] for "visible" but received float32/);
    v.dispose();
    assert.throws(() => v.encode(et.randn([2, 3, 32, 32])), /disposed/);
  });
});
