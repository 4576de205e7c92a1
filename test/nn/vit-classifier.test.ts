// The fine-tuning classifier against timm: a saved checkpoint loads into
// timm's mean-pooled VisionTransformer with strict=True and gives the same
// logits and gradients; BEiT's initialisation; building it from a pretraining
// checkpoint (ours or the authors' .pth) or from scratch, and the errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { VitClassifier, sinCosPosEmbed2d, vitConfig } from '../../lib/nn';
import { classifierFrom, saveClassifier, loadClassifier } from '../../lib/eval';
import { ExtremaModel, saveCheckpoint, CheckpointError } from '../../lib/extrema';
import { runOracle, tmpDir } from '../helpers/oracle';
import { assertClose, assertCloseToScale } from '../helpers/compare';

const ENCODER = { imgSize: 16, patchSize: 4, inChans: 1, embedDim: 32, depth: 2, numHeads: 2, pooling: 'mean' as const, classAttentionLayers: 0 };
const TIMM_MODEL = { img_size: 16, patch_size: 4, in_chans: 1, num_classes: 5, embed_dim: 32, depth: 2, num_heads: 2, mlp_ratio: 4 };

function maxDiff(a: et.Tensor, b: et.Tensor): number {
  return et.scope(() => a.sub(b).abs().max().item());
}

test('a saved classifier loads into timm strictly and gives the same logits and gradients (eval mode)', () => {
  const dir = tmpDir();
  try {
    const model = new VitClassifier({ encoder: vitConfig(ENCODER), numClasses: 5 }, { seed: 3 });
    // Every parameter away from its initial value, so each one shows in the logits.
    et.noGrad(() => {
      const g = et.Generator.create(9);
      for (const p of model.parameters()) et.scope(() => p.add_(et.randn(p.shape, { generator: g }).mul(0.05)));
    });
    const file = path.join(dir, 'ft.safetensors');
    const step = et.tensor([7], { dtype: 'int64' });
    saveClassifier(file, model, { classes: ['a', 'b', 'c', 'd', 'e'], metadata: { epoch: '2' }, extra: new Map([['train.step', step]]) });
    const images = et.randn([3, 1, 16, 16], { generator: et.Generator.create(1) });
    const labels = et.tensor([0, 4, 2], { dtype: 'int64' });
    const ref = runOracle('classifier_oracle.py', { task: 'timm', checkpoint: file, model: TIMM_MODEL, extra: ['train.step'] }, { images, labels });
    model.eval();
    const logits = model.forward(images);
    assertClose(logits, ref.get('logits')!, 'logits', { rtol: 1e-4, atol: 1e-5 });
    et.crossEntropy(logits, labels).backward();
    const names = model.namedParameters().map(([n]) => n);
    assert.deepEqual(names.sort(), [...ref.keys()].filter((k) => k.startsWith('grad:')).map((k) => k.slice(5)).sort(), 'the same parameters as timm, by name');
    for (const [name, p] of model.namedParameters()) assertCloseToScale(p.grad!, ref.get(`grad:${name}`)!, `grad of ${name}`, 1e-4);

    const back = loadClassifier(file);
    assert.equal(back.model.training, false);
    assert.deepEqual(back.classes, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(back.metadata.epoch, '2');
    assert.deepEqual([...back.extra.keys()], ['train.step']);
    assert.equal(back.extra.get('train.step')!.item(), 7);
    assert.equal(maxDiff(back.model.forward(images), logits), 0, 'reloaded: bit-identical logits');
    assert.deepEqual(back.model.config, model.config);
    for (const t of [...ref.values(), ...back.extra.values(), images, labels, logits, step]) t.dispose();
    back.model.dispose();
    model.dispose();
    assert.deepEqual(fs.readdirSync(dir), ['ft.safetensors'], 'written atomically, no temporary file left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("BEiT's initialisation: Linears N(0, 0.02), head scaled by 0.001, sin-cos pos_embed as a trained parameter, drop path 0..0.1", () => {
  const model = new VitClassifier({ encoder: vitConfig({ ...ENCODER, embedDim: 64, depth: 3, numHeads: 4 }), numClasses: 10 }, { seed: 5 });
  const std = (t: et.Tensor) => et.scope(() => t.std().item());
  const fc1 = model.blocks.items[0]!.mlp.fc1.weight;
  assert.ok(Math.abs(std(fc1) - 0.02) < 0.002, `fc1 std ${std(fc1)}`);
  assert.ok(Math.abs(std(model.head.weight) - 0.02 * 0.001) < 0.002 * 0.001, `head std ${std(model.head.weight)}`);
  assert.equal(et.scope(() => model.head.bias!.abs().max().item()), 0);
  const table = sinCosPosEmbed2d(64, 4, 4);
  assert.equal(maxDiff(model.pos_embed, table), 0);
  assert.equal(model.pos_embed.requiresGrad, true, 'fine-tuned, as the authors (use_learnable_pos_emb=True)');
  assert.deepEqual(model.blocks.items.map((b) => b.dropPath), [0, 0.05, 0.1]);
  assert.deepEqual([model.depth, model.numClasses, model.config.dropPathRate, model.config.headInitScale], [3, 10, 0.1, 0.001]);
  assert.ok(!model.stateDict().has('cls_token') && !model.stateDict().has('norm.weight'), 'no class token, no final norm');
  table.dispose();
  model.dispose();
});

test('classifierFrom: the student (default) or teacher of an ExtreMA checkpoint, an authors\' .pth, or from scratch', () => {
  const dir = tmpDir();
  try {
    const pre = new ExtremaModel({
      encoder: { ...ENCODER, pooling: 'class-attention', classAttentionLayers: 1, dropPathRate: 0.1 },
      projectorHiddenDim: 16, projectorDim: 8, predictorHiddenDim: 16, maskRatio: 0.5,
    }, { seed: 2 });
    // Teacher and student differ, so loading the wrong one shows.
    et.noGrad(() => { for (const p of pre.momentum_encoder.parameters()) p.add_(0.5); });
    const file = path.join(dir, 'pre.safetensors');
    saveCheckpoint(file, pre);
    const student = classifierFrom(file, { numClasses: 3, seed: 1 });
    const teacher = classifierFrom(file, { numClasses: 3, which: 'teacher', seed: 1 });
    const enc = (m: VitClassifier) => m.stateDict();
    for (const [name, t] of enc(student)) {
      if (name.startsWith('head.') || name.startsWith('fc_norm.')) continue;
      assert.equal(maxDiff(t, pre.base_encoder.stateDict().get(name)!), 0, `student ${name}`);
      assert.equal(maxDiff(enc(teacher).get(name)!, pre.momentum_encoder.stateDict().get(name)!), 0, `teacher ${name}`);
    }
    const scratch = classifierFrom('none', { numClasses: 3, encoder: ENCODER, seed: 1 });
    assert.equal(maxDiff(student.head.weight, scratch.head.weight), 0, 'the head is initialised from the seed alone');
    assert.ok(maxDiff(student.blocks.items[0]!.attn.qkv.weight, scratch.blocks.items[0]!.attn.qkv.weight) > 0.01);
    assert.equal(student.blocks.items[1]!.dropPath, 0.1, "the classifier's drop path, not the pretraining one");

    // At another image size the pretrained blocks load and pos_embed is the new grid's table.
    const larger = classifierFrom(file, { numClasses: 3, encoder: { ...ENCODER, imgSize: 24 } });
    const table = sinCosPosEmbed2d(32, 6, 6);
    assert.equal(maxDiff(larger.pos_embed, table), 0);

    // The authors' torch.save format, module.-prefixed.
    const pth = path.join(dir, 'checkpoint_0099.pth');
    for (const t of runOracle('classifier_oracle.py', { task: 'save_pth', path: pth }, pre.stateDict()).values()) t.dispose();
    const fromPth = classifierFrom(pth, { numClasses: 3, which: 'teacher', numHeads: 2 });
    assert.equal(maxDiff(fromPth.blocks.items[1]!.mlp.fc2.weight, pre.momentum_encoder.blocks.items[1]!.mlp.fc2.weight), 0);

    // Errors: another width, a file that is not a ViT checkpoint, no architecture for 'none', a bad source.
    assert.throws(() => classifierFrom(file, { numClasses: 3, encoder: { ...ENCODER, embedDim: 64 } }),
      (e: Error) => e instanceof CheckpointError && /Expected a checkpoint of the requested encoder \(embedDim 64\) but .*pre\.safetensors holds an encoder with embedDim 32/.test(e.message));
    const plain = path.join(dir, 'plain.safetensors');
    const z = et.zeros([2]);
    et.saveSafetensors(plain, { x: z });
    assert.throws(() => classifierFrom(plain, { numClasses: 3 }), /Expected a ViT pretraining checkpoint .* not an ExtreMA checkpoint/);
    assert.throws(() => classifierFrom('none', { numClasses: 3 }), /needs the encoder architecture/);
    assert.throws(() => classifierFrom(file, { numClasses: 0 }), /Expected an integer in \[1, 1000000\] for "numClasses"/);
    const ft = path.join(dir, 'ft.safetensors');
    saveClassifier(ft, student, { classes: null });
    assert.throws(() => loadClassifier(file), /is not a fine-tuned classifier .* its format is "extrema\/1"/);
    assert.throws(() => saveClassifier(ft, student, { classes: ['only one'] }), /Expected 3 class names/);
    assert.equal(loadClassifier(ft).classes, null);
    for (const m of [pre, student, teacher, scratch, larger, fromPth]) m.dispose();
    table.dispose();
    z.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
