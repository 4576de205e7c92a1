// The pretraining recipe schema: presets resolve exactly as before the schema,
// errors name the field's path, absurd values are refused, cross-field rules
// hold, config files in JSON and YAML, and every CLI flag sets its field.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { pretrainConfig, pretrainSchema, PRESETS, type PretrainConfigInput } from '../../lib/train/config';
import { PRETRAIN_FLAGS } from '../../lib/cli/pretrain';
import { recipeInput } from '../../lib/cli/recipe-command';
import { readConfigFile, schemaOptions, leaves, ConfigError, closest } from '../../lib/config';
import { tmpDir } from '../helpers/oracle';

const BUNDLED = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist');

test('every preset resolves to the values it had before the schema', () => {
  // Written with JSON.stringify(pretrainConfig({ preset })) from the hand-written validator of issue 7.
  const file = path.resolve(__dirname, '..', '..', '..', 'test', 'train', 'presets-before-schema.json');
  const before = JSON.parse(fs.readFileSync(file, 'utf8').split('<bundled>').join(BUNDLED)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(PRESETS).sort(), Object.keys(before).sort());
  for (const [name, expected] of Object.entries(before)) {
    const resolved = JSON.parse(JSON.stringify(pretrainConfig({ preset: name })));
    // The small presets became the recipes that learn (issue 11): BatchNorm
    // heads, constant momentum 0.99, 10 epochs, the probe on (the cpu-small
    // one with its kNN monitor every 2 epochs).
    const small = name === 'demo' || name === 'cpu-small';
    // knn.probe came after the snapshot: on in the small presets, off elsewhere.
    assert.equal(resolved.knn.probe, small, `${name}: knn.probe`);
    delete resolved.knn.probe;
    // lossEvery came after it too: every preset reads a GPU's losses every 20 steps.
    assert.equal(resolved.lossEvery, 20, `${name}: lossEvery`);
    delete resolved.lossEvery;
    // and collapseEvery: collapse signs every 20 steps
    assert.equal(resolved.collapseEvery, 20, `${name}: collapseEvery`);
    delete resolved.collapseEvery;
    // and the issue 11 levers, at the paper's values in every preset but
    // the small ones (the predictor at 10x lr there)
    assert.equal(resolved.predictorLrScale, small ? 10 : 1, `${name}: predictorLrScale`);
    delete resolved.predictorLrScale;
    assert.equal(resolved.model.headNorm, small ? 'batch' : 'layer', `${name}: model.headNorm`);
    delete resolved.model.headNorm;
    assert.equal(resolved.model.momentumSchedule, small ? 'constant' : 'cosine', `${name}: model.momentumSchedule`);
    delete resolved.model.momentumSchedule;
    if (small) {
      assert.equal(resolved.model.momentum, 0.99, `${name}: model.momentum`);
      assert.equal(resolved.epochs, 10, `${name}: epochs`);
      resolved.model.momentum = (expected as { model: { momentum: number } }).model.momentum;
      resolved.epochs = (expected as { epochs: number }).epochs;
    }
    if (name === 'cpu-small') {
      assert.equal(resolved.knn.every, 2, 'cpu-small: knn.every');
      resolved.knn.every = (expected as { knn: { every: number } }).knn.every;
      // batch 128: twice the steps of the same epochs (the tune grid: +0.8 probe points)
      assert.equal(resolved.batchSize, 128, 'cpu-small: batchSize');
      resolved.batchSize = (expected as { batchSize: number }).batchSize;
    }
    // and --cuda-graph, off everywhere
    assert.equal(resolved.cudaGraph, false, `${name}: cudaGraph`);
    delete resolved.cudaGraph;
    // and the data-parallel options (issue 13): per-rank draws, no cross-rank check
    assert.deepEqual([resolved.globalDraws, resolved.syncCheckEvery], [false, 0], `${name}: globalDraws, syncCheckEvery`);
    delete resolved.globalDraws;
    delete resolved.syncCheckEvery;
    assert.deepEqual(resolved, expected, name);
  }
  assert.deepEqual(pretrainConfig(), pretrainConfig({ preset: 'demo' }), 'demo is the default preset');
});

test('unknown fields are errors naming their path, with the closest known name', () => {
  assert.throws(() => pretrainConfig({ knn: { kk: 3 } } as never), /^ConfigError: Unknown pretrain config field "knn\.kk" \(did you mean "knn\.k"\?\)$/);
  assert.throws(() => pretrainConfig({ epochz: 3 } as never), /Unknown pretrain config field "epochz" \(did you mean "epochs"\?\)/);
  assert.throws(() => pretrainConfig({ model: { encoder: { embedDm: 64 } } } as never), /Unknown pretrain config field "model\.encoder\.embedDm" \(did you mean "model\.encoder\.embedDim"\?\)/);
  assert.throws(() => pretrainConfig({ augment: { zzz: 1 } } as never), /Unknown pretrain config field "augment\.zzz"$/, 'no far-fetched suggestion');
  assert.equal(closest('bachSize', ['batchSize', 'baseLr']), 'batchSize');
  assert.equal(closest('colour', ['batchSize', 'baseLr']), undefined);
});

test('absurd values are refused with the bound in the message; the bounds themselves are accepted', () => {
  const cases: [PretrainConfigInput, RegExp][] = [
    [{ epochs: 1e12 }, /Expected an integer in \[1, 100000\] for "epochs" but received number 1000000000000/],
    [{ epochs: 2.5 }, /an integer in \[1, 100000\] for "epochs" but received number 2\.5/],
    [{ batchSize: 1e6 }, /an integer in \[1, 65536\] for "batchSize"/],
    [{ accumulate: 4097 }, /an integer in \[1, 4096\] for "accumulate"/],
    [{ baseLr: 10 }, /a number in \(0, 10\) for "baseLr" but received number 10/],
    [{ baseLr: Infinity }, /for "baseLr" but received number Infinity/],
    [{ baseLr: Number.NaN }, /for "baseLr" but received number NaN/],
    [{ workers: 1000 }, /an integer in \[1, 256\] for "workers"/],
    [{ knn: { k: 0 } }, /^ConfigError: Expected an integer in \[1, 100000\] for "knn\.k" but received number 0$/],
    [{ knn: { temperature: 0 } }, /a number in \(0, 100\] for "knn\.temperature"/],
    [{ model: { encoder: { imgSize: 1e5 } } }, /for "model\.encoder\.imgSize"/],
    [{ model: { maskRatio: 1 } }, /Expected a mask ratio in \[0, 1\) for "model\.maskRatio" but received number 1/],
    [{ augment: { jitter: { hue: 0.6 } } }, /a number in \[0, 0\.5\] for "augment\.jitter\.hue"/],
    [{ augment: { flipP: 2 } }, /a probability in \[0, 1\] for "augment\.flipP"/],
    [{ betas: [0.9, 1] }, /a number in \[0, 1\) for "betas\.1" but received number 1/],
    [{ train: '' }, /Expected a path for "train" but received the string ""/],
    [{ precision: 'fp8' as never }, /Expected one of fp32, bf16, fp16 for "precision" but received the string "fp8"/],
  ];
  for (const [input, message] of cases) assert.throws(() => pretrainConfig(input), message, JSON.stringify(input));
  const edge = pretrainConfig({ epochs: 100000, batchSize: 65536, accumulate: 4096, workers: 256, knn: { k: 100000 } });
  assert.deepEqual([edge.epochs, edge.batchSize, edge.accumulate, edge.workers, edge.knn.k], [100000, 65536, 4096, 256, 100000]);
});

test('cross-field rules name the field they blame', () => {
  assert.throws(() => pretrainConfig({ warmupEpochs: 5, epochs: 5 }), /Expected a number in \[0, epochs = 5\) for "warmupEpochs" but received number 5/);
  assert.throws(() => pretrainConfig({ minLr: 1e-3, baseLr: 5e-4 }), /Expected a number in \[0, baseLr = 0\.0005\] for "minLr" but received number 0\.001/);
  assert.throws(() => pretrainConfig({ augment: { scale: [0.9, 0.2] } }), /Expected two numbers 0 < lo <= hi <= 1 for "augment\.scale" but received \[0\.9, 0\.2\]/);
  assert.throws(() => pretrainConfig({ precision: 'fp16' }), /Invalid "precision": fp16 with a dynamic loss scaler is for CUDA/);
  assert.equal(pretrainConfig({ precision: 'fp16', device: 'cuda:0' }).precision, 'fp16', 'fp16 is fine on CUDA (no device is touched)');
  assert.throws(() => pretrainConfig({ model: { encoder: { patchSize: 5 } } }), /Invalid "model": ViT config: image size 28x28 is not divisible by patchSize 5/);
  assert.throws(() => pretrainConfig({ model: { numMasks: 9 } }), /Invalid "model": 9 disjoint masks of 9 visible tokens need 81 patches/);
});

test('several problems are reported together, one line each', () => {
  const e = (() => {
    try {
      pretrainConfig({ epochs: 'ten', knn: { k: -1, kk: 1 } } as never);
    } catch (err) {
      return err;
    }
    return null;
  })();
  assert.ok(e instanceof ConfigError);
  assert.deepEqual(e.problems, [
    'Expected an integer in [1, 100000] for "epochs" but received the string "ten"',
    'Expected an integer in [1, 100000] for "knn.k" but received number -1',
    'Unknown pretrain config field "knn.kk" (did you mean "knn.k"?)',
  ]);
  assert.match(e.message, /^3 problems:\n {2}Expected/);
});

test('config files: JSON and YAML give the same recipe; errors name the file and line', () => {
  const dir = tmpDir();
  try {
    const recipe = { preset: 'cpu-small', epochs: 7, baseLr: 1e-4, betas: [0.8, 0.9], clipGrad: null, knn: { k: 20 }, model: { encoder: { depth: 2 } } };
    const write = (name: string, body: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, body);
      return file;
    };
    const json = write('r.json', JSON.stringify(recipe));
    const yaml = write('r.yaml', 'preset: cpu-small\nepochs: 7\nbaseLr: 1e-4\nbetas: [0.8, 0.9]\nclipGrad: null\nknn:\n  k: 20\nmodel:\n  encoder:\n    depth: 2\n');
    const yml = write('r.yml', 'preset: cpu-small\nepochs: 7\nbaseLr: 0.0001\nbetas:\n  - 0.8\n  - 0.9\nclipGrad: null\nknn: { k: 20 }\nmodel: { encoder: { depth: 2 } }\n');
    const noExt = write('recipe', 'preset: cpu-small\nepochs: 7\nbaseLr: 1e-4\nbetas: [0.8, 0.9]\nclipGrad: null\nknn: {k: 20}\nmodel: {encoder: {depth: 2}}\n');
    for (const file of [json, yaml, yml, noExt]) assert.deepEqual(readConfigFile(file), recipe, file);
    const cfg = pretrainConfig(readConfigFile(yaml));
    assert.deepEqual([cfg.epochs, cfg.baseLr, cfg.knn.k, cfg.model.encoder.depth, cfg.warmupEpochs], [7, 1e-4, 20, 2, 1]);

    const badJson = write('bad.json', '{\n  "epochs": 3,\n  "knn": }\n');
    assert.throws(() => readConfigFile(badJson), new RegExp(`^SyntaxError: The config file ${badJson.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON \\(line 3, column 10\\)`));
    assert.throws(() => readConfigFile(write('bad2.json', '{"epochs": 3,\n\n  "x" 4}')), /not valid JSON \(line 3, column 7\)/);
    assert.throws(() => readConfigFile(write('bad.yaml', 'epochs: 3\nknn:\n  k: 1\n  k: 2\n')), /bad\.yaml is not valid YAML \(line 4, column 3\): Map keys must be unique/);
    assert.throws(() => readConfigFile(write('bad', '{"epochs": [1,\n')), /bad is neither JSON nor YAML:\n {2}.*not valid JSON \(line 2, column 1\).*\n {2}.*not valid YAML/);
    assert.throws(() => readConfigFile(write('list.yaml', '- 1\n- 2\n')), /Expected a mapping of recipe fields in the config file .*list\.yaml but it holds an array of length 2/);
    assert.throws(() => readConfigFile(path.join(dir, 'missing.json')), /Cannot read the config file .*missing\.json/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Parses argv with the pretrain recipe flags (no action) and resolves the recipe. */
function resolveFlags(argv: string[], preset = 'demo') {
  const cmd = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  for (const option of schemaOptions(pretrainSchema, PRETRAIN_FLAGS)) cmd.addOption(option);
  cmd.parse(argv, { from: 'user' });
  return pretrainConfig({ preset, ...recipeInput(cmd.opts(), {}, pretrainSchema, PRETRAIN_FLAGS) });
}

function at(obj: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], obj);
}

test('every recipe flag sets its field', () => {
  // [argv, field, resolved value]; each value differs from the preset's.
  const cases: [string[], string, unknown, string?][] = [
    [['--train', 'x.gz'], 'train', 'x.gz'],
    [['--train-limit', '100'], 'trainLimit', 100],
    [['--out', 'o'], 'out', 'o'],
    [['--epochs', '7'], 'epochs', 7],
    [['--warmup-epochs', '0.5'], 'warmupEpochs', 0.5],
    [['--batch-size', '64'], 'batchSize', 64],
    [['--accumulate', '2'], 'accumulate', 2],
    [['--base-lr', '1e-3'], 'baseLr', 1e-3],
    [['--min-lr', '1e-6'], 'minLr', 1e-6],
    [['--predictor-lr-scale', '3'], 'predictorLrScale', 3],
    [['--weight-decay', '0.05'], 'weightDecay', 0.05],
    [['--weight-decay-end', '0.2'], 'weightDecayEnd', 0.2],
    [['--betas', '0.8,0.9'], 'betas', [0.8, 0.9]],
    [['--clip-grad', '3'], 'clipGrad', 3],
    [['--precision', 'bf16'], 'precision', 'bf16'],
    [['--device', 'cuda:1'], 'device', 'cuda:1'],
    [['--cuda-graph'], 'cudaGraph', true],
    [['--loss-every', '5'], 'lossEvery', 5],
    [['--collapse-every', '0'], 'collapseEvery', 0],
    [['--global-draws'], 'globalDraws', true],
    [['--sync-check-every', '10'], 'syncCheckEvery', 10],
    [['--seed', '5'], 'seed', 5],
    [['--workers', '2'], 'workers', 2],
    [['--strict'], 'strict', true],
    [['--checkpoint-every', '2'], 'checkpointEvery', 2],
    [['--model-preset', 'small'], 'model.encoder.embedDim', 384, 'vit-b-224'],
    [['--img-size', '56'], 'model.encoder.imgSize', [56, 56]],
    [['--patch-size', '7'], 'model.encoder.patchSize', 7],
    [['--in-chans', '3'], 'model.encoder.inChans', 3],
    [['--width', '96'], 'model.encoder.embedDim', 96],
    [['--depth', '2'], 'model.encoder.depth', 2],
    [['--heads', '4'], 'model.encoder.numHeads', 4],
    [['--mlp-ratio', '2'], 'model.encoder.mlpRatio', 2],
    [['--qkv-bias', 'false'], 'model.encoder.qkvBias', false],
    [['--class-attention-layers', '1'], 'model.encoder.classAttentionLayers', 1],
    [['--layer-scale-init', '0.5'], 'model.encoder.layerScaleInit', 0.5],
    [['--pooling', 'mean', '--class-attention-layers', '0'], 'model.encoder.pooling', 'mean'],
    [['--drop-path', '0.2'], 'model.encoder.dropPathRate', 0.2],
    [['--norm-eps', '1e-5'], 'model.encoder.normEps', 1e-5],
    [['--mask-ratio', '0.75'], 'model.maskRatio', 0.75],
    [['--num-masks', '3'], 'model.numMasks', 3],
    [['--mask-mode', 'independent'], 'model.maskMode', 'independent'],
    [['--loss', 'infonce'], 'model.loss', 'infonce'],
    [['--temperature', '0.5'], 'model.temperature', 0.5],
    [['--momentum', '0.995'], 'model.momentum', 0.995],
    [['--momentum-schedule', 'cosine'], 'model.momentumSchedule', 'cosine'],
    [['--projector-hidden', '64'], 'model.projectorHiddenDim', 64],
    [['--projector-dim', '32'], 'model.projectorDim', 32],
    [['--projector-layers', '2'], 'model.projectorLayers', 2],
    [['--predictor-hidden', '48'], 'model.predictorHiddenDim', 48],
    [['--predictor-layers', '3'], 'model.predictorLayers', 3],
    [['--head-norm', 'layer'], 'model.headNorm', 'layer'],
    [['--augment', 'crop'], 'augment.scheme', 'crop'],
    [['--crop-scale', '0.3,0.9'], 'augment.scale', [0.3, 0.9]],
    [['--flip-p', '0'], 'augment.flipP', 0],
    [['--jitter', '0.1,0.2,0.3,0.05'], 'augment.jitter', { brightness: 0.1, contrast: 0.2, saturation: 0.3, hue: 0.05, p: 0.8 }],
    [['--jitter-p', '0.5'], 'augment.jitter.p', 0.5],
    [['--grayscale-p', '0.1'], 'augment.grayscaleP', 0.1],
    [['--knn-every', '3'], 'knn.every', 3],
    [['--knn-bank', 'bank.gz'], 'knn.bank', 'bank.gz'],
    [['--knn-bank-limit', '10'], 'knn.bankLimit', 10],
    [['--knn-queries', 'q.gz'], 'knn.queries', 'q.gz'],
    [['--knn-query-limit', '20'], 'knn.queryLimit', 20],
    [['--knn-k', '5'], 'knn.k', 5],
    [['--knn-temperature', '0.2'], 'knn.temperature', 0.2],
    [['--knn-probe', 'false'], 'knn.probe', false],
  ];
  const tested = new Set(cases.map(([argv]) => argv[0]));
  assert.deepEqual(PRETRAIN_FLAGS.map((f) => f.flags.split(' ')[0]).filter((f) => !tested.has(f)), [], 'every flag has a case');
  for (const [argv, field, value, preset] of cases) {
    const base = pretrainConfig({ preset: preset ?? 'demo' });
    assert.notDeepEqual(at(base, field), value, `${argv[0]}: the case must change the field`);
    const cfg = resolveFlags(argv, preset);
    assert.deepEqual(at(cfg, field), value, argv.join(' '));
    assert.deepEqual({ ...cfg, [field.split('.')[0]!]: null }, { ...base, [field.split('.')[0]!]: null }, `${argv[0]} changes nothing outside ${field.split('.')[0]}`);
  }
  assert.deepEqual(resolveFlags(['--img-size', '28,56']).model.encoder.imgSize, [28, 56]);
  assert.equal(resolveFlags(['--clip-grad', '3', '--clip-grad', 'null']).clipGrad, null, 'the last flag wins; null clears');
  assert.equal(leaves(pretrainSchema).length, PRETRAIN_FLAGS.reduce((n, f) => n + (typeof f.path === 'string' ? 1 : f.path.length), 0), 'one flag per leaf');
});

test('a bad flag fails with the same words as the same value in a config file', () => {
  const flagError = (argv: string[]) => {
    try {
      resolveFlags(argv);
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  };
  assert.match(flagError(['--knn-k', '0']), /Expected an integer in \[1, 100000\] for --knn-k but received number 0/);
  assert.throws(() => pretrainConfig({ knn: { k: 0 } }), /Expected an integer in \[1, 100000\] for "knn\.k" but received number 0/);
  assert.match(flagError(['--epochs', '1e12']), /Expected an integer in \[1, 100000\] for --epochs but received number 1000000000000/);
  assert.match(flagError(['--epochs', 'ten']), /for --epochs but received the string "ten"/);
  assert.match(flagError(['--mask-ratio', '1.5']), /Expected a mask ratio in \[0, 1\) for --mask-ratio but received number 1\.5/);
  assert.match(flagError(['--betas', '0.9,1']), /Expected a number in \[0, 1\) for --betas\[1\] but received number 1/);
  assert.match(flagError(['--jitter', '0.1,0.2,0.3']), /Expected 4 comma-separated values \(brightness, contrast, saturation, hue\) for --jitter but received "0\.1,0\.2,0\.3"/);
  assert.match(flagError(['--jitter', '0.1,0.2,0.3,0.9']), /Expected a number in \[0, 0\.5\] for --jitter \(hue\) but received number 0\.9/);
  assert.match(flagError(['--precision', 'fp8']), /Allowed choices are fp32, bf16, fp16/);
  assert.match(flagError(['--in-chans', '2']), /Allowed choices are 1, 3/);
  assert.match(flagError(['--warmup-epochs', '19']), /for "warmupEpochs" but received number 19/, 'cross-field rules run on the resolved recipe');
});
