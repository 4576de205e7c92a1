// The linear probe: the head (BatchNorm1d without affine + Linear, SGD with
// momentum, warmup + half cosine) trained on the same features in the same
// batch order equals torch's (losses, weights, running statistics, test
// logits); the raw class token before the final norm; `extrema linprobe`
// end to end on a Fashion-MNIST subset (cached and augmented) and its
// errors for unknown test classes and a wrong checkpoint.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import * as et from '../../lib';
import { ExtremaModel, saveCheckpoint } from '../../lib/extrema';
import { evaluateHead, linearProbeHead, loadLinearHead, matchTestClasses, probeLr, shuffledBatches, trainLinearHead, embedDataset } from '../../lib/eval';
import { openDataset } from '../../lib/data';
import { runOracle, tmpDir } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const FMNIST = path.join(ROOT, 'examples', 'data', 'fashion-mnist');

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('linear-probe head: N SGD steps on the same features and batch order equal torch (losses, weights, BN statistics, test logits)', () => {
  const g = et.Generator.create(4);
  const n = 96;
  const dim = 12;
  const classes = 5;
  const labels = et.randint(0, classes, [n], { generator: g }).keep();
  // Class-dependent means plus noise, scaled and shifted so the BatchNorm matters.
  const centres = et.randn([classes, dim], { generator: g }).mul(2).keep();
  const features = et.scope(() => centres.indexSelect(0, labels).add(et.randn([n, dim], { generator: g })).mul(3).add(5)).keep();
  const testLabels = et.randint(0, classes, [40], { generator: g }).keep();
  const testFeatures = et.scope(() => centres.indexSelect(0, testLabels).add(et.randn([40, dim], { generator: g })).mul(3).add(5)).keep();
  const batches = shuffledBatches(n, 16, 4, 7); // 6 steps x 4 epochs
  assert.equal(batches.length, 24);
  const lr = 0.4;
  const warmupSteps = 3;
  const head = linearProbeHead(dim, classes, { seed: 1 });
  const weight = head.stateDict().get('1.weight')!.clone().keep();
  const bias = head.stateDict().get('1.bias')!.clone().keep();
  // The recipe's initialisation: N(0, 0.01) weights, zero bias.
  assert.ok(Math.abs(weight.std().item() - 0.01) < 0.003, `weight std ${weight.std().item()}`);
  assert.equal(bias.abs().max().item(), 0);
  const order = et.fromTypedArray(BigInt64Array.from(batches.flatMap((b) => [...b]), BigInt), [batches.length, 16]);
  const ref = runOracle('linprobe_oracle.py', { cases: [{ name: 'h', mode: 'head', lr, warmup_steps: warmupSteps, momentum: 0.9 }] },
    { 'h/features': features, 'h/labels': labels, 'h/weight': weight, 'h/bias': bias, 'h/order': order, 'h/test_features': testFeatures });
  const lrs: number[] = [];
  const losses = trainLinearHead(head, features, labels, batches, { lr, warmupSteps, onStep: (_s, _l, stepLr) => lrs.push(stepLr) });
  assert.equal(lrs[0], 0);
  assert.equal(lrs[warmupSteps], lr);
  assertClose(et.tensor(losses, { dtype: 'float64' }), ref.get('h/losses')!, 'losses', { rtol: 1e-5, atol: 1e-5 });
  assert.ok(losses[losses.length - 1]! < losses[0]! * 0.5, `the loss falls: ${losses[0]} -> ${losses[losses.length - 1]}`);
  const sd = head.stateDict();
  assertClose(sd.get('1.weight')!, ref.get('h/weight')!, 'weight', { rtol: 1e-4, atol: 1e-5 });
  assertClose(sd.get('1.bias')!, ref.get('h/bias')!, 'bias', { rtol: 1e-4, atol: 1e-5 });
  assertClose(sd.get('0.running_mean')!, ref.get('h/running_mean')!, 'running mean', { rtol: 1e-5, atol: 1e-5 });
  assertClose(sd.get('0.running_var')!, ref.get('h/running_var')!, 'running var', { rtol: 1e-5, atol: 1e-4 });
  // Evaluation runs the BatchNorm in eval mode: its accuracy is that of torch's eval-mode logits.
  const m = evaluateHead(head, testFeatures, testLabels, classes);
  assert.equal(head.training, true, 'evaluateHead restores the mode');
  const refPred = ref.get('h/test_logits')!.argmax(1).toTypedArray<'int64'>();
  const truth = testLabels.toTypedArray<'int64'>();
  const correct = truth.filter((y, i) => y === refPred[i]).length;
  assert.equal(m.top1, correct / 40);
  assert.equal(m.confusion.reduce((a, b) => a + b, 0), 40);
  for (let c = 0; c < classes; c++) {
    const rows = [...truth.keys()].filter((i) => Number(truth[i]) === c);
    const want = rows.length === 0 ? null : rows.filter((i) => refPred[i] === truth[i]).length / rows.length;
    assert.equal(m.perClass[c], want, `class ${c}`);
  }
  assert.ok(m.top5 >= m.top1 && m.top5 <= 1);
  // Training and evaluating again leaves no tensor behind (the optimizer's buffers are freed with it).
  const live = et.memory().liveTensors;
  trainLinearHead(head, features, labels, batches.slice(0, 5), { lr, warmupSteps });
  evaluateHead(head, testFeatures, testLabels, classes);
  assert.equal(et.memory().liveTensors, live);
  for (const t of [labels, centres, features, testLabels, testFeatures, weight, bias, order, ...ref.values()]) t.dispose();
  head.dispose();
});

test('encode({ instanceNorm: false }) is the class token before the final LayerNorm', () => {
  const vit = new et.nn.VisionTransformer({ imgSize: 16, patchSize: 4, inChans: 1, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 }, { seed: 2 });
  et.noGrad(() => et.scope(() => {
    et.nn.init.normal_(vit.norm.weight, 1, 0.5);
    et.nn.init.normal_(vit.norm.bias, 0, 0.5);
    const x = et.randn([3, 1, 16, 16], { generator: et.Generator.create(1) });
    const normed = vit.encode(x);
    const raw = vit.encode(x, { instanceNorm: false });
    assertClose(vit.norm.forward(raw.instance), normed.instance, 'norm(raw) = instance');
    assertClose(raw.tokens, normed.tokens, 'tokens stay normalised');
    assert.ok(raw.instance.sub(normed.instance).abs().max().item() > 0.1);
  }));
  vit.dispose();
});

function tinyCheckpoint(file: string, imgSize: number, inChans: number): void {
  const model = new ExtremaModel({
    encoder: { imgSize, patchSize: imgSize / 4, inChans, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 },
    projectorHiddenDim: 16, projectorDim: 8, predictorHiddenDim: 16,
  }, { seed: 3 });
  saveCheckpoint(file, model);
  model.dispose();
}

test('extrema linprobe (cached): Fashion-MNIST subset -> metrics.json, confusion.png, head, log.jsonl, consistent with the library', async () => {
  const dir = tmpDir();
  try {
    const ckpt = path.join(dir, 'model.safetensors');
    tinyCheckpoint(ckpt, 28, 1);
    const out = path.join(dir, 'run');
    const train = path.join(FMNIST, 'train-images-idx3-ubyte.gz');
    const testSet = path.join(FMNIST, 't10k-images-idx3-ubyte.gz');
    const r = cli(['linprobe', '--checkpoint', ckpt, '--train', train, '--test', testSet, '--out', out, '--limit', '400', '--epochs', '10', '--batch-size', '32', '--base-lr', '1', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /top-1 \d+\.\d+%\s+top-5/);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.numClasses, 10);
    assert.equal(metrics.totalSteps, 10 * 12);
    assert.equal(metrics.warmupSteps, 12);
    assert.equal(metrics.testCount, 400);
    assert.ok(metrics.top1 > 0.3, `a linear probe of random features beats chance (10%) clearly: ${metrics.top1}`);
    assert.equal(metrics.perClass.length, 10);
    // The saved head, on features embedded independently, reproduces the reported metrics.
    const { head, classes } = loadLinearHead(path.join(out, 'head.safetensors'));
    assert.equal(classes, null);
    const { encoder } = et.loadEncoder(ckpt);
    const emb = await embedDataset(encoder, openDataset(testSet, { size: 28, channels: 1, limit: 400 }), { instanceNorm: false });
    const m = evaluateHead(head, emb.features, emb.labels!, 10);
    assert.equal(m.top1, metrics.top1);
    assert.deepEqual(m.perClass, metrics.perClass.map((c: { accuracy: number | null }) => c.accuracy));
    emb.dispose();
    encoder.dispose();
    head.dispose();
    const png = await sharp(path.join(out, 'confusion.png')).metadata();
    assert.equal(png.width, png.height);
    assert.ok(png.width! >= 10 * 4);
    const records = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = records.filter((x) => x.kind === 'step');
    assert.equal(steps.length, 120);
    steps.forEach((s, i) => assert.equal(s.lr, probeLr(i, 120, { lr: 32 / 256, warmupSteps: 12 })));
    assert.equal(records.filter((x) => x.kind === 'epoch').length, 10);
    assert.equal(records.at(-1).top1, metrics.top1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('extrema linprobe (augmented, LARS) runs the crop + flip protocol and writes its metrics', () => {
  const dir = tmpDir();
  try {
    const ckpt = path.join(dir, 'model.safetensors');
    tinyCheckpoint(ckpt, 28, 1);
    const out = path.join(dir, 'run');
    const r = cli(['linprobe', '--mode', 'augmented', '--checkpoint', ckpt, '--train', path.join(FMNIST, 'train-images-idx3-ubyte.gz'),
      '--test', path.join(FMNIST, 't10k-images-idx3-ubyte.gz'), '--out', out, '--limit', '128', '--epochs', '2', '--warmup-epochs', '1', '--batch-size', '32', '--lars', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.mode, 'augmented');
    assert.equal(metrics.optimizer, 'lars');
    assert.equal(metrics.totalSteps, 8);
    assert.equal(metrics.warmupSteps, 4);
    assert.ok(fs.existsSync(path.join(out, 'head.safetensors')) && fs.existsSync(path.join(out, 'confusion.png')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function writeIdx(file: string, labels: number[]): void {
  const n = labels.length;
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(n, 4);
  header.writeUInt32BE(4, 8);
  header.writeUInt32BE(4, 12);
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat([header, Buffer.alloc(n * 16, 7)])));
  const lh = Buffer.alloc(8);
  lh.writeUInt32BE(0x00000801, 0);
  lh.writeUInt32BE(n, 4);
  fs.writeFileSync(file.replace('images-idx3', 'labels-idx1'), zlib.gzipSync(Buffer.concat([lh, Buffer.from(labels)])));
}

test('linprobe: unknown test classes (folders and IDX) and a wrong checkpoint give one clear error each', async () => {
  const dir = tmpDir();
  try {
    for (const [set, names] of [['train', ['cat', 'dog']], ['test', ['cat', 'cow', 'emu']]] as const) {
      for (const name of names) {
        fs.mkdirSync(path.join(dir, set, name), { recursive: true });
        await sharp(Buffer.alloc(16 * 16 * 3, 90), { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(dir, set, name, 'a.png'));
      }
    }
    const ckpt = path.join(dir, 'model.safetensors');
    tinyCheckpoint(ckpt, 16, 3);
    const r = cli(['linprobe', '--checkpoint', ckpt, '--train', path.join(dir, 'train'), '--test', path.join(dir, 'test'), '--out', path.join(dir, 'run'), '--quiet']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /The test set has 2 classes the training set lacks: "cow", "emu" \(training classes: cat, dog\)/);
    assert.ok(!fs.existsSync(path.join(dir, 'run')), 'no run folder for a refused run');
    writeIdx(path.join(dir, 'a-images-idx3-ubyte.gz'), [0, 1, 1, 3]);
    writeIdx(path.join(dir, 'b-images-idx3-ubyte.gz'), [0, 1, 2, 3, 5]);
    const a = openDataset(path.join(dir, 'a-images-idx3-ubyte.gz'), { size: 4 });
    const b = openDataset(path.join(dir, 'b-images-idx3-ubyte.gz'), { size: 4 });
    assert.throws(() => matchTestClasses(a, b), /The test set has 2 classes the training set lacks: 2, 5 \(training classes: 0, 1, 3\)/);
    const ok = matchTestClasses(b, a);
    assert.deepEqual([ok.numClasses, [...ok.testLabels]], [6, [0, 1, 1, 3]]);
    // A file that is not an ExtreMA checkpoint (here: a linear-probe head) is refused by name.
    const head = linearProbeHead(4, 2);
    const headFile = path.join(dir, 'head.safetensors');
    et.evaluation.saveLinearHead(headFile, head, { classes: null, mean: [0.5], std: [0.5] });
    head.dispose();
    const w = cli(['linprobe', '--checkpoint', headFile, '--train', path.join(dir, 'train'), '--test', path.join(dir, 'train'), '--out', path.join(dir, 'run2'), '--quiet']);
    assert.notEqual(w.status, 0);
    assert.match(w.stderr, /head\.safetensors/);
    assert.doesNotMatch(w.stderr, /\n\s+at /, 'a message, not a stack trace');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
