// `extrema embed` end to end, as a subprocess: features for an IDX file and
// an image folder from this project's checkpoint and from an authors'-style
// .pth, compared with the PyTorch reference's teacher on the same pixels.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import * as et from '../../lib';
import { ExtremaModel, saveCheckpoint, type ExtremaConfigInput } from '../../lib/extrema';
import { runOracle, tmpDir } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');

function cli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

function writeIdx(file: string, pixels: Uint8Array, n: number, h: number, w: number): void {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(n, 4);
  header.writeUInt32BE(h, 8);
  header.writeUInt32BE(w, 12);
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat([header, Buffer.from(pixels)])));
}

function modelWith(config: ExtremaConfigInput, g: et.Generator): ExtremaModel {
  const model = new ExtremaModel(config, { seed: 11 });
  et.noGrad(() => {
    for (const p of model.parameters()) {
      const noise = et.randn(p.shape, { generator: g }).mul(0.05);
      p.add_(noise);
      noise.dispose();
    }
  });
  return model;
}

function weights(model: ExtremaModel): Record<string, et.Tensor> {
  return Object.fromEntries([...model.stateDict()].map(([k, v]) => [`w:${k}`, v]));
}

function randomPixels(g: et.Generator, count: number): Uint8Array {
  const t = et.randint(0, 256, [count], { generator: g, dtype: 'uint8' });
  const out = t.toTypedArray<'uint8'>();
  t.dispose();
  return out;
}

test('embed: IDX images with a safetensors checkpoint and with an authors\' .pth give the PyTorch teacher features, in order', () => {
  const dir = tmpDir();
  const g = et.Generator.create(5);
  const model = modelWith({
    encoder: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 2, numHeads: 2 },
    projectorHiddenDim: 24, projectorDim: 8, predictorHiddenDim: 16,
  }, g);
  try {
    const n = 10;
    const pixels = randomPixels(g, n * 28 * 28);
    const idx = path.join(dir, 'images-idx3-ubyte.gz');
    writeIdx(idx, pixels, n, 28, 28);
    const ckpt = path.join(dir, 'model.safetensors');
    saveCheckpoint(ckpt, model);
    const pth = path.join(dir, 'authors.pth');
    const px = et.fromTypedArray(pixels, [n, 28, 28, 1]);
    const ref = runOracle('extrema_ref.py', { task: 'features', config: model.config, mean: [0.5], std: [0.5], save_pth: pth }, { ...weights(model), pixels: px });
    px.dispose();
    const expected = ref.get('features')!;
    for (const [source, extra] of [[ckpt, []], [pth, ['--heads', '2']]] as const) {
      const out = path.join(dir, `features-${path.extname(source).slice(1)}.safetensors`);
      const r = cli(['embed', '--checkpoint', source, '--images', idx, '--out', out, '--batch-size', '4', ...extra]);
      assert.equal(r.status, 0, r.stderr);
      const { tensors } = et.loadSafetensors(out);
      assertClose(tensors.get('features')!, expected, `features from ${path.basename(source)}`, { rtol: 1e-5, atol: 1e-5 });
      for (const t of tensors.values()) t.dispose();
    }
    // The student differs from the teacher here, so --student must change the result.
    const student = path.join(dir, 'student.safetensors');
    assert.equal(cli(['embed', '--checkpoint', ckpt, '--images', idx, '--out', student, '--student', '--quiet']).status, 0);
    const s = et.loadSafetensors(student).tensors.get('features')!;
    assert.ok(s.sub(expected).abs().max().item() > 1e-3, 'student features differ from the teacher\'s');
    for (const t of ref.values()) t.dispose();
  } finally {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embed: an image folder is read recursively in path order, RGB with ImageNet normalisation', async () => {
  const dir = tmpDir();
  const g = et.Generator.create(9);
  const model = modelWith({
    encoder: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 },
    projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5,
  }, g);
  try {
    const names = ['b.png', 'a/z.png', 'a/b.png', 'c.png', 'B.png'];
    const sorted = [...names].sort();
    const pixels = new Map<string, Uint8Array>();
    fs.mkdirSync(path.join(dir, 'imgs', 'a'), { recursive: true });
    for (const name of names) {
      const p = randomPixels(g, 16 * 16 * 3);
      pixels.set(name, p);
      await sharp(Buffer.from(p), { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(dir, 'imgs', name));
    }
    const all = new Uint8Array(names.length * 16 * 16 * 3);
    sorted.forEach((name, i) => all.set(pixels.get(name)!, i * 16 * 16 * 3));
    const ckpt = path.join(dir, 'model.safetensors');
    saveCheckpoint(ckpt, model);
    const px = et.fromTypedArray(all, [names.length, 16, 16, 3]);
    const ref = runOracle('extrema_ref.py', { task: 'features', config: model.config, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, { ...weights(model), pixels: px });
    px.dispose();
    const out = path.join(dir, 'features.safetensors');
    const r = cli(['embed', '--checkpoint', ckpt, '--images', path.join(dir, 'imgs'), '--out', out, '--batch-size', '2', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    const { tensors, metadata } = et.loadSafetensors(out);
    assert.equal(metadata.encoder, 'teacher');
    assertClose(tensors.get('features')!, ref.get('features')!, 'folder features', { rtol: 1e-5, atol: 1e-5 });
    for (const t of [...tensors.values(), ...ref.values()]) t.dispose();
  } finally {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embed: bad input is one clear error line and exit code 1', () => {
  const dir = tmpDir();
  try {
    const missing = cli(['embed', '--checkpoint', path.join(dir, 'nope.safetensors'), '--images', dir, '--out', path.join(dir, 'o.safetensors')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /Cannot read checkpoint .*nope\.safetensors/);
    const junk = path.join(dir, 'junk.safetensors');
    fs.writeFileSync(junk, 'not a checkpoint at all');
    const bad = cli(['embed', '--checkpoint', junk, '--images', dir, '--out', path.join(dir, 'o.safetensors')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /Invalid safetensors file/);
    const flag = cli(['embed', '--checkpoint', junk, '--images', dir, '--out', 'x', '--batch-size', 'zero']);
    assert.equal(flag.status, 1);
    assert.match(flag.stderr, /Expected an integer in \[1, 65536\] for --batch-size but received the string "zero"/);
    assert.equal(fs.existsSync(path.join(dir, 'o.safetensors')), false, 'no output on failure');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embed: an undecodable image stops the run naming it (--strict, the default); --skip-bad reports it and writes the other rows with their indices', async () => {
  const dir = tmpDir();
  const g = et.Generator.create(4);
  const model = modelWith({
    encoder: { imgSize: 8, patchSize: 4, inChans: 3, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 },
    projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5,
  }, g);
  try {
    const imgs = path.join(dir, 'imgs');
    const good = path.join(dir, 'good');
    fs.mkdirSync(imgs);
    fs.mkdirSync(good);
    for (const name of ['a.png', 'c.png', 'd.png']) {
      const file = path.join(imgs, name);
      await sharp(Buffer.from(randomPixels(g, 8 * 8 * 3)), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(file);
      fs.copyFileSync(file, path.join(good, name));
    }
    const broken = path.join(imgs, 'b.png');
    fs.writeFileSync(broken, Buffer.from('\x89PNG\r\n\x1a\n truncated'));
    const ckpt = path.join(dir, 'model.safetensors');
    saveCheckpoint(ckpt, model);
    const out = path.join(dir, 'features.safetensors');
    for (const extra of [[], ['--strict']]) {
      const stopped = cli(['embed', '--checkpoint', ckpt, '--images', imgs, '--out', out, '--quiet', ...extra]);
      assert.equal(stopped.status, 1);
      assert.match(stopped.stderr, new RegExp(`Cannot read image ${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      assert.equal(fs.existsSync(out), false, 'no output when stopped');
    }
    const both = cli(['embed', '--checkpoint', ckpt, '--images', imgs, '--out', out, '--skip-bad', '--strict']);
    assert.equal(both.status, 1);
    assert.match(both.stderr, /--skip-bad and --strict contradict each other/);
    const skipped = cli(['embed', '--checkpoint', ckpt, '--images', imgs, '--out', out, '--batch-size', '2', '--skip-bad', '--quiet']);
    assert.equal(skipped.status, 0, skipped.stderr);
    assert.ok(skipped.stderr.includes(`skipped ${broken}: `), skipped.stderr);
    assert.match(skipped.stderr, /wrote 3 x 16 features .* \(1 skipped\)/);
    const reference = path.join(dir, 'reference.safetensors');
    assert.equal(cli(['embed', '--checkpoint', ckpt, '--images', good, '--out', reference, '--quiet']).status, 0);
    const a = et.loadSafetensors(out);
    const b = et.loadSafetensors(reference);
    assert.deepEqual(Array.from(a.tensors.get('indices')!.toTypedArray<'int64'>(), Number), [0, 2, 3], 'rows are items a, c, d of the folder');
    assert.deepEqual(JSON.parse(a.metadata.skipped!), [broken]);
    // Batches are composed differently ([a], [c, d] against [a, c], [d]), so rows agree to float rounding.
    assertClose(a.tensors.get('features')!, b.tensors.get('features')!, 'the same rows as a folder without the broken file', { rtol: 1e-5, atol: 1e-6 });
    assert.equal(b.tensors.has('indices'), false, 'no indices when nothing was skipped');
    for (const t of [...a.tensors.values(), ...b.tensors.values()]) t.dispose();
  } finally {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
