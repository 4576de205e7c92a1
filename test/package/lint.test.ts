// The published package: what `npm pack` puts in the tarball, and the
// packaging linters (publint, Are the Types Wrong?) on that very tarball.
// Packs with --ignore-scripts: the tarball holds the dist/lib built by pretest.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, tmpDir, writeFiles } from './scripts';

const BIN = path.join(ROOT, 'node_modules', '.bin');
let dir = '';
let tarball = '';
let files: string[] = [];

function npm(args: string[], cwd: string) {
  // npm_config_* from an enclosing `npm test` would leak into the pack.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  return spawnSync('npm', args, { cwd, encoding: 'utf8', env });
}

function tool(name: string, args: string[]) {
  return spawnSync(path.join(BIN, name), args, { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
}

before(() => {
  dir = tmpDir();
  const r = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  assert.equal(r.status, 0, `npm pack failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout);
  tarball = path.join(dir, info.filename);
  files = info.files.map((f: { path: string }) => f.path);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the tarball ships the library, its types, the native sources and what the install step runs', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  for (const f of ['package.json', 'README.md', 'LICENSE', 'CMakeLists.txt', 'binding.gyp', 'dist/lib/index.js', 'dist/lib/index.d.ts',
    pkg.main, pkg.types, pkg.bin.extrema, 'examples/data/fashion-mnist/train-images-idx3-ubyte.gz']) {
    assert.ok(files.includes(f), `${f} is missing from the tarball`);
  }
  const native = (fs.readdirSync(path.join(ROOT, 'native'), { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile()).map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
  assert.ok(native.includes('native/third_party/gloo/include/gloo/context.h'), 'the walk reaches nested folders');
  for (const f of native) assert.ok(files.includes(f), `${f} is missing from the tarball`);
  // The install script and every local module it requires, transitively.
  const script = /^node (\S+)/.exec(pkg.scripts.install)![1]!;
  const pending = [script];
  const seen = new Set<string>();
  while (pending.length > 0) {
    const f = pending.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    assert.ok(files.includes(f), `${f} (needed by the install step) is missing from the tarball`);
    const text = fs.readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of text.matchAll(/require\('(\.{1,2}\/[^']+)'\)/g)) {
      pending.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1]!.endsWith('.js') ? m[1]! : `${m[1]}.js`)));
    }
  }
  assert.ok(seen.size >= 3, `expected the install script to pull in its helpers, saw ${[...seen].join(', ')}`);
});

test('the tarball leaves out tests, benchmarks, CI, TypeScript sources and source maps', () => {
  const unwanted = files.filter((f) => /^(dist\/(test|bench|examples)|test|bench|lib|\.ci|build|\.libtorch|runs)\//.test(f) ||
    f.endsWith('.map') || f === 'BENCHMARKS.md' || f === 'tsconfig.json');
  assert.deepEqual(unwanted, []);
});

test('publint finds no errors in the tarball', () => {
  const r = tool('publint', ['run', tarball, '--level', 'error']);
  assert.equal(r.status, 0, `publint:\n${r.stdout}\n${r.stderr}`);
});

test('publint does catch a package whose entry point is missing (so a pass above means something)', () => {
  const broken = path.join(dir, 'broken');
  writeFiles(broken, { 'package.json': JSON.stringify({ name: 'broken', version: '1.0.0', main: 'missing.js', files: ['index.js'] }), 'index.js': '' });
  const r = tool('publint', ['run', broken, '--level', 'error', '--pack', 'false']);
  assert.notEqual(r.status, 0, `publint passed a package without its main file:\n${r.stdout}`);
  assert.match(r.stdout, /pkg\.main is missing\.js but the file does not exist/);
});

test('Are the Types Wrong? finds no problems for CommonJS, ESM and bundler consumers', () => {
  const r = tool('attw', [tarball, '--format', 'ascii', '--no-definitely-typed']);
  assert.equal(r.status, 0, `attw:\n${r.stdout}\n${r.stderr}`);
});
