// Attention maps: the class token's attention laid out on the patch grid
// (values from the encoder's attention weights, themselves checked against
// PyTorch in test/extrema/parity.test.ts), and the PNG figure.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import * as et from '../../lib';
import { classAttentionMaps, attentionGridPng } from '../../lib/eval';
import { tmpDir } from '../helpers/oracle';

test('class-attention maps: head-averaged weights on the patches, row-major on the grid', () => {
  et.scope(() => {
    const enc = new et.nn.VisionTransformer({ imgSize: [16, 24], patchSize: 4, inChans: 1, embedDim: 16, depth: 1, numHeads: 2 }, { seed: 2 });
    const x = et.randn([3, 1, 16, 24]);
    const maps = classAttentionMaps(enc, x);
    assert.deepEqual(maps.shape, [3, 4, 6]);
    // The same pass classAttentionMaps makes (gradients off, so the same inference kernels): equal to the bit.
    const w = et.noGrad(() => enc.encode(x, { attentionOf: 'blocks_token.1' }).attention!); // [3, 2, 1, 25]
    const expected = w.mean(1).select(1, 0).narrow(1, 1, 24).reshape(3, 4, 6);
    assert.equal(maps.sub(expected).abs().max().item(), 0);
    const clsShare = w.mean(1).select(1, 0).select(1, 0);
    assert.ok(maps.sum([1, 2]).add(clsShare).sub(1).abs().max().item() < 1e-6, 'patches + class token = 1');
    const png = classAttentionMaps(enc, x, 'blocks.0');
    assert.deepEqual(png.shape, [3, 4, 6]);
    assert.ok(Math.abs(png.sum().item() - 3) < 1e-4, 'self-attention: mean attention received, summing to 1 per image');
    enc.dispose();
  });
});

test('attention figure: image/heat pairs in a grid PNG, from the CLI too', async () => {
  const pixels = et.rand([5, 1, 8, 8]);
  const maps = et.rand([5, 2, 2]);
  const png = await attentionGridPng(pixels, maps, { cell: 32, columns: 2 });
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 2 * 2 * 32, 3 * 32]);
  pixels.dispose();
  maps.dispose();
  const dir = tmpDir();
  try {
    const model = new et.ExtremaModel({ encoder: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 16, depth: 1, numHeads: 2 }, projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5 }, { seed: 1 });
    const ckpt = path.join(dir, 'm.safetensors');
    et.saveCheckpoint(ckpt, model);
    model.dispose();
    const data = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
    const out = path.join(dir, 'attention.png');
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js'), 'attention', '--checkpoint', ckpt, '--images', data, '--out', out, '--count', '6', '--columns', '3'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = await sharp(fs.readFileSync(out)).metadata();
    assert.deepEqual([m.width, m.height], [3 * 2 * 96, 2 * 96]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
