// Layer-wise lr decay: the parameter groups (names, lr scale, weight decay,
// order) equal BEiT's get_parameter_groups with LayerDecayValueAssigner over
// timm's mean-pooled ViT of the same shape, written in Python from BEiT's rules.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VitClassifier, vitConfig } from '../../lib/nn';
import { AdamW, layerDecayParamGroups, vitLayerId } from '../../lib/optim';
import { ORACLE_DIR, runPython, tmpDir } from '../helpers/oracle';

interface OracleGroup { names: string[]; lr_scale: number; weight_decay: number }

test("layer-decay groups equal BEiT's assignment for the same model (depth 3, decay 0.65, wd 0.05)", () => {
  const encoder = vitConfig({ imgSize: 16, patchSize: 4, inChans: 3, embedDim: 32, depth: 3, numHeads: 2, pooling: 'mean', classAttentionLayers: 0 });
  const model = new VitClassifier({ encoder, numClasses: 7 }, { seed: 0 });
  const groups = layerDecayParamGroups(model, { weightDecay: 0.05, layerDecay: 0.65 });
  const dir = tmpDir();
  try {
    const spec = path.join(dir, 'spec.json');
    fs.writeFileSync(spec, JSON.stringify({
      model: { img_size: 16, patch_size: 4, in_chans: 3, num_classes: 7, embed_dim: 32, depth: 3, num_heads: 2 },
      layer_decay: 0.65, weight_decay: 0.05,
    }));
    const script = path.join(ORACLE_DIR, 'layer_decay_oracle.py');
    const ref = JSON.parse(runPython(`import runpy, sys; sys.argv = [${JSON.stringify(script)}, ${JSON.stringify(spec)}]; runpy.run_path(sys.argv[0], run_name='__main__')`)) as OracleGroup[];
    assert.equal(groups.length, ref.length, 'number of groups');
    assert.equal(ref.length, 2 * (3 + 2), 'decayed and not decayed at each of depth + 2 layers');
    groups.forEach((g, i) => {
      const r = ref[i]!;
      assert.deepEqual(g.names, r.names, `group ${i} names`);
      assert.ok(Math.abs(g.lrScale! - r.lr_scale) <= 1e-12 * r.lr_scale, `group ${i} lr scale ${g.lrScale} vs ${r.lr_scale}`);
      assert.equal(g.weightDecay, r.weight_decay, `group ${i} weight decay`);
      assert.equal(g.params.length, g.names!.length);
    });
    // The parameters are the model's own tensors, each in exactly one group.
    const own = new Map(model.namedParameters());
    const flat = groups.flatMap((g) => g.names!.map((n, j) => [n, g.params[j]] as const));
    assert.equal(flat.length, own.size);
    for (const [n, p] of flat) assert.equal(p, own.get(n), n);
    // AdamW takes them as they are.
    const opt = new AdamW(groups, { lr: 1e-3 });
    assert.equal(opt.groups[0]!.lrScale, Math.pow(0.65, 4));
    opt.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('layer ids and option errors', () => {
  assert.deepEqual(['pos_embed', 'cls_token', 'patch_embed.proj.weight', 'blocks.0.norm1.weight', 'blocks.11.mlp.fc2.bias', 'fc_norm.weight', 'head.bias'].map((n) => vitLayerId(n, 12)),
    [0, 0, 0, 1, 12, 13, 13]);
  const model = new VitClassifier({ encoder: vitConfig({ imgSize: 8, patchSize: 4, embedDim: 8, depth: 1, numHeads: 2, pooling: 'mean', classAttentionLayers: 0 }), numClasses: 2 });
  assert.throws(() => layerDecayParamGroups(model, { weightDecay: 0.05, layerDecay: 0 }), /Expected a number in \(0, 1\] for "layerDecay" of layerDecayParamGroups but received number 0/);
  assert.throws(() => layerDecayParamGroups(model, { weightDecay: -1, layerDecay: 0.5 }), /"weightDecay" of layerDecayParamGroups/);
  assert.throws(() => layerDecayParamGroups({} as VitClassifier, { weightDecay: 0, layerDecay: 0.5 }), /Expected a VitClassifier/);
  // Frozen parameters are left out, as BEiT does.
  model.patch_embed.proj.weight.requiresGrad_(false);
  const names = layerDecayParamGroups(model, { weightDecay: 0, layerDecay: 1 }).flatMap((g) => g.names!);
  assert.ok(!names.includes('patch_embed.proj.weight') && names.includes('patch_embed.proj.bias'));
  model.dispose();
});
