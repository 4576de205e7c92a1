// `extrema pretrain` and `extrema knn` as subprocesses: a JSON config file
// with flags on top, the resolved config in the run folder, the summary lines,
// then kNN from the checkpoint it wrote.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/oracle';

const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const DATA = path.resolve(__dirname, '..', '..', '..', 'examples', 'data', 'fashion-mnist');

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('pretrain: config file + flags, summary, run folder; knn on its checkpoint', () => {
  const dir = tmpDir();
  try {
    const config = path.join(dir, 'recipe.json');
    fs.writeFileSync(config, JSON.stringify({
      preset: 'demo', trainLimit: 96, batchSize: 32, epochs: 3, warmupEpochs: 1,
      model: { encoder: { embedDim: 32, depth: 1, numHeads: 2, classAttentionLayers: 1, patchSize: 7 }, projectorHiddenDim: 32, projectorDim: 16, predictorHiddenDim: 32, maskRatio: 0.75 },
      knn: { bankLimit: 64, queryLimit: 32, k: 10 },
    }));
    const out = path.join(dir, 'run');
    const r = cli(['pretrain', '--config', config, '--epochs', '2', '--num-masks', '3', '--augment', 'two-views', '--out', out, '--threads', '1', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kNN top-1 before: \d+\.\d\d%  after: \d+\.\d\d%/);
    assert.match(r.stdout, new RegExp(`run folder: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*loss\\.png`));
    const resolved = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(resolved.epochs, 2, 'the flag overrides the file');
    assert.equal(resolved.batchSize, 32, 'the file overrides the preset');
    assert.equal(resolved.model.numMasks, 3);
    assert.equal(resolved.model.encoder.embedDim, 32);
    assert.equal(resolved.augment.scheme, 'two-views');
    assert.equal(resolved.augment.jitter.brightness, 0.4, 'untouched nested fields keep the preset');
    const k = cli(['knn', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--train', path.join(DATA, 'train-images-idx3-ubyte.gz'),
      '--test', path.join(DATA, 't10k-images-idx3-ubyte.gz'), '--bank-limit', '64', '--query-limit', '32', '--k', '10']);
    assert.equal(k.status, 0, k.stderr);
    const logged = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.kind === 'knn').at(-1);
    assert.match(k.stdout, new RegExp(`kNN top-1: ${(logged.accuracy * 100).toFixed(2)}% \\(32 queries, bank 64, k 10, T 0.07\\)`), 'the same accuracy as the run\'s last monitor');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrain: bad flags and configs are one clear line and exit code 1', () => {
  const dir = tmpDir();
  try {
    const bad = cli(['pretrain', '--mask-ratio', '1.5', '--out', path.join(dir, 'x')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /mask ratio in \[0, 1\)/);
    const typo = path.join(dir, 'typo.json');
    fs.writeFileSync(typo, '{"epochz": 3}');
    assert.match(cli(['pretrain', '--config', typo]).stderr, /Unknown pretrain config field "epochz"/);
    fs.writeFileSync(typo, '{"epochs": ');
    assert.match(cli(['pretrain', '--config', typo]).stderr, /is not valid JSON/);
    assert.match(cli(['pretrain', '--epochs', 'ten']).stderr, /Expected an integer in \[1, 100000\] for --epochs but received the string "ten"/);
    const absurd = cli(['pretrain', '--epochs', '1e12', '--out', path.join(dir, 'z')]);
    assert.equal(absurd.status, 1);
    assert.match(absurd.stderr, /Expected an integer in \[1, 100000\] for --epochs but received number 1000000000000/);
    assert.equal(fs.existsSync(path.join(dir, 'z')), false, 'nothing started');
    const yamlTypo = path.join(dir, 'typo.recipe');
    fs.writeFileSync(yamlTypo, 'knn:\n  kk: 3\n');
    assert.match(cli(['pretrain', '--config', yamlTypo]).stderr, /Unknown pretrain config field "knn\.kk" \(did you mean "knn\.k"\?\)/, 'YAML in a file of any name');
    assert.match(cli(['pretrain', '--train', path.join(dir, 'missing.gz'), '--out', path.join(dir, 'y')]).stderr, /Expected an image folder, image file or IDX file but .*missing\.gz cannot be read/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrain --print-config: the resolved recipe, which reads back as the same recipe', () => {
  const dir = tmpDir();
  try {
    const printed = cli(['pretrain', '--preset', 'cpu-small', '--epochs', '9', '--knn-k', '20', '--print-config']);
    assert.equal(printed.status, 0, printed.stderr);
    const cfg = JSON.parse(printed.stdout);
    assert.deepEqual([cfg.epochs, cfg.knn.k, cfg.batchSize, cfg.model.encoder.embedDim], [9, 20, 128, 192]);
    const file = path.join(dir, 'printed.json');
    fs.writeFileSync(file, printed.stdout);
    assert.equal(cli(['pretrain', '--config', file, '--print-config']).stdout, printed.stdout, 'JSON reads back unchanged');
    const yaml = cli(['pretrain', '--config', file, '--print-config', 'yaml']);
    assert.equal(yaml.status, 0, yaml.stderr);
    assert.match(yaml.stdout, /^train: .*\nepochs: 9$/ms);
    fs.writeFileSync(path.join(dir, 'printed.yaml'), yaml.stdout);
    assert.equal(cli(['pretrain', '--config', path.join(dir, 'printed.yaml'), '--print-config']).stdout, printed.stdout, 'YAML reads back unchanged');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
