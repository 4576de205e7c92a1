// Checkpoints: safetensors round trip with the config in the metadata,
// strict-load errors, and an authors'-style .pth written by torch.save whose
// architecture is inferred from its weights.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../../lib';
import { ExtremaModel, saveCheckpoint, loadCheckpoint, readCheckpoint, loadEncoder, CheckpointError, inferConfig } from '../../lib/extrema';
import { runOracle, tmpDir } from '../helpers/oracle';

const CONFIG = {
  encoder: { imgSize: 32, patchSize: 8, embedDim: 32, depth: 2, numHeads: 4, classAttentionLayers: 3, dropPathRate: 0.1 },
  projectorHiddenDim: 24, projectorDim: 8, predictorHiddenDim: 16, maskRatio: 0.5, numMasks: 2, loss: 'infonce' as const, temperature: 0.3,
};

function sameState(a: ExtremaModel, b: ExtremaModel): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual([...sa.keys()], [...sb.keys()]);
  for (const [k, t] of sa) {
    const u = sb.get(k)!;
    assert.deepEqual(Buffer.from(u.toTypedArray().buffer), Buffer.from(t.toTypedArray().buffer), `${k} is bit-identical`);
  }
}

test('safetensors checkpoint round trip: same weights bit for bit, same config, rebuilt from the file alone', () => {
  const dir = tmpDir();
  try {
    const model = new ExtremaModel(CONFIG, { seed: 4 });
    et.noGrad(() => model.predictor.parameters()[0]!.add_(1));
    const file = path.join(dir, 'ckpt.safetensors');
    saveCheckpoint(file, model, { epoch: '3' });
    const back = loadCheckpoint(file);
    assert.deepEqual(back.config, model.config);
    sameState(model, back);
    const { metadata } = readCheckpoint(file);
    assert.equal(metadata.epoch, '3');
    assert.deepEqual(fs.readdirSync(dir), ['ckpt.safetensors'], 'no temporary file is left behind');
    model.dispose();
    back.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('checkpoint errors: not an ExtreMA file, truncated, weights that do not fit the config', () => {
  const dir = tmpDir();
  try {
    const plain = path.join(dir, 'plain.safetensors');
    const t = et.zeros([2]);
    et.saveSafetensors(plain, { x: t });
    t.dispose();
    assert.throws(() => loadCheckpoint(plain), (e: Error) => e instanceof CheckpointError && /not an ExtreMA checkpoint/.test(e.message));
    const model = new ExtremaModel(CONFIG, { seed: 4 });
    const file = path.join(dir, 'ckpt.safetensors');
    saveCheckpoint(file, model);
    const bytes = fs.readFileSync(file);
    const truncated = path.join(dir, 'truncated.safetensors');
    fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    assert.throws(() => loadCheckpoint(truncated), /truncated/);
    // A config that claims a different width than the weights have.
    const lying = path.join(dir, 'lying.safetensors');
    const sd = model.stateDict();
    et.saveSafetensors(lying, sd, { format: 'extrema/1', config: JSON.stringify({ ...model.config, encoder: { ...model.config.encoder, depth: 1 } }) });
    assert.throws(() => loadCheckpoint(lying), /unexpected keys \(\d+\): base_encoder\.blocks\.1\./);
    assert.throws(() => loadCheckpoint(path.join(dir, 'missing.safetensors')), /Cannot read checkpoint/);
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an authors\' .pth (torch.save, module. prefixes, optimizer, argparse args) loads into an equal model with the architecture inferred', () => {
  const dir = tmpDir();
  try {
    const model = new ExtremaModel({ ...CONFIG, encoder: { ...CONFIG.encoder, imgSize: 48, embedDim: 128, numHeads: 2 } }, { seed: 6 });
    const pth = path.join(dir, 'checkpoint_0001.pth.tar');
    const px = et.zeros([1, 48, 48, 3], { dtype: 'uint8' });
    const ref = runOracle('extrema_ref.py', { task: 'features', config: model.config, mean: [0, 0, 0], std: [1, 1, 1], save_pth: pth },
      { ...Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v])), pixels: px });
    for (const v of ref.values()) v.dispose();
    px.dispose();
    const state = readCheckpoint(pth);
    assert.equal(state.kind, 'pth');
    const enc = state.config.encoder;
    assert.deepEqual([enc.imgSize, enc.patchSize, enc.inChans, enc.embedDim, enc.depth, enc.numHeads, enc.classAttentionLayers, enc.mlpRatio, enc.pooling],
      [[48, 48], 8, 3, 128, 2, 2, 3, 4, 'class-attention'], 'width 128 -> 2 heads of 64 by default');
    assert.deepEqual([state.config.projectorHiddenDim, state.config.projectorDim, state.config.projectorLayers, state.config.predictorHiddenDim, state.config.predictorLayers], [24, 8, 3, 16, 2]);
    assert.ok([...state.state.keys()].every((k) => !k.startsWith('module.')), 'module. prefix stripped');
    state.dispose();
    const back = loadCheckpoint(pth);
    sameState(model, back);
    const { encoder } = loadEncoder(pth, { which: 'student' });
    assert.equal(encoder.training, false, 'loaded encoders are in eval mode');
    assert.equal(encoder.blocks.items[1]!.mlp.fc1.weight.sub(model.base_encoder.blocks.items[1]!.mlp.fc1.weight).abs().max().item(), 0);
    encoder.dispose();
    back.dispose();
    assert.throws(() => inferConfig(new Map()), /no base_encoder\.patch_embed\.proj\.weight/);
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('BatchNorm heads: a checkpoint round-trips the running statistics and the head norm; the weights alone tell BatchNorm heads apart', () => {
  const dir = tmpDir();
  try {
    const model = new ExtremaModel({ ...CONFIG, headNorm: 'batch' }, { seed: 4 });
    // one training forward moves the running statistics away from their init
    et.scope(() => model.forward(et.randn([4, 3, 32, 32]), et.randn([4, 3, 32, 32])));
    const state = model.stateDict();
    assert.ok(state.has('momentum_encoder.head.1.running_var') && state.has('predictor.1.num_batches_tracked'));
    assert.equal(state.get('predictor.1.num_batches_tracked')!.item(), 1);
    const file = path.join(dir, 'bn.safetensors');
    saveCheckpoint(file, model);
    const back = loadCheckpoint(file);
    assert.equal(back.config.headNorm, 'batch');
    sameState(model, back);
    const { encoder } = loadEncoder(file);
    assert.deepEqual(encoder.stateDict().get('head.4.running_mean')!.toTypedArray(), state.get('momentum_encoder.head.4.running_mean')!.toTypedArray());
    assert.equal(inferConfig(state, 4).headNorm, 'batch');
    const plain = new ExtremaModel(CONFIG, { seed: 1 });
    assert.equal(inferConfig(plain.stateDict(), 4).headNorm, 'layer');
    plain.dispose();
    encoder.dispose();
    back.dispose();
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
