// Prebuilt addons: a prebuild is taken only when its sidecar names this
// machine's platform, libc and the very torch version and flavour; the
// install step (scripts/build-native.js) copies it into build/Release and
// points build/Release/torch-lib at this machine's libtorch, or compiles.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, buildNative, prebuilds, projectTorch, torchLocate, tmpDir, writeFiles, type BuildIdentity } from './scripts';

const HOST: BuildIdentity = buildNative.buildIdentity('/opt/torch', { version: '2.13.0', variant: 'cpu', cxx11abi: null },
  { napi: 8, platform: 'linux', arch: 'x64', libc: 'glibc' });

function sidecar(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const s: Record<string, unknown> = { napi: HOST.napi };
  for (const key of prebuilds.MATCHED_KEYS) s[key] = HOST[key as keyof BuildIdentity];
  return { ...s, ...overrides };
}

test('a prebuild with the same platform, libc, torch version and flavour is accepted', () => {
  assert.equal(prebuilds.prebuildMismatch(sidecar(), HOST, 9), null);
  assert.equal(prebuilds.prebuildMismatch(sidecar({ torchRoot: '/elsewhere' }), HOST, 9), null, 'the build machine path does not matter');
});

test('a prebuild for another torch, flavour, libc, arch or a newer Node-API is rejected with the reason', () => {
  assert.equal(prebuilds.prebuildMismatch(sidecar({ torchVersion: '2.12.0' }), HOST, 9),
    'torchVersion is "2.12.0", this machine needs "2.13.0"');
  assert.match(prebuilds.prebuildMismatch(sidecar({ torchVariant: 'cu128' }), HOST, 9)!, /^torchVariant is "cu128"/);
  assert.match(prebuilds.prebuildMismatch(sidecar({ libc: 'musl' }), HOST, 9)!, /^libc is "musl"/);
  assert.match(prebuilds.prebuildMismatch(sidecar({ arch: 'arm64' }), HOST, 9)!, /^arch is "arm64"/);
  assert.match(prebuilds.prebuildMismatch(sidecar({ cxx11abi: 0 }), HOST, 9)!, /^cxx11abi is 0, this machine needs null/);
  assert.equal(prebuilds.prebuildMismatch(sidecar({ napi: 10 }), HOST, 9), 'needs Node-API 10, this Node has 9');
  assert.match(prebuilds.prebuildMismatch(sidecar({ napi: '8' }), HOST, 9)!, /napi is "8", expected an integer/);
  const noTorch = sidecar();
  delete noTorch.torchVersion;
  assert.match(prebuilds.prebuildMismatch(noTorch, HOST, 9)!, /^torchVersion is null/);
});

test('prebuilds are listed from their sidecars and the matching one is chosen', () => {
  const dir = tmpDir();
  try {
    const addon = path.join(dir, 'addon.node');
    fs.writeFileSync(addon, 'binary');
    const old = prebuilds.savePrebuild(addon, { ...HOST, torchVersion: '2.12.0' }, path.join(dir, 'prebuilds'));
    const match = prebuilds.savePrebuild(addon, HOST, path.join(dir, 'prebuilds'));
    assert.equal(path.basename(match), 'extrema.napi.glibc.torch-2.13.0-cpu.node');
    assert.equal(path.basename(path.dirname(match)), 'linux-x64');
    // A sidecar without its binary, and one that is not JSON, are reported, not chosen.
    writeFiles(path.join(dir, 'prebuilds', 'linux-x64'), { 'a-orphan.json': JSON.stringify(sidecar()), 'b-broken.json': '{' });
    const found = prebuilds.listPrebuilds(path.join(dir, 'prebuilds'), 'linux', 'x64');
    assert.equal(found.length, 4);
    const { chosen, rejected } = prebuilds.choosePrebuild(found, HOST, 9);
    assert.equal(chosen?.file, match);
    assert.deepEqual(rejected.map((r) => path.basename(r.file)).sort(), ['a-orphan.node', 'b-broken.node', path.basename(old)].sort());
    assert.match(rejected.find((r) => r.file === old)!.reason, /torchVersion is "2\.12\.0"/);
    assert.match(rejected.find((r) => r.file.endsWith('a-orphan.node'))!.reason, /a-orphan\.node is missing/);
    assert.deepEqual(prebuilds.listPrebuilds(path.join(dir, 'prebuilds'), 'darwin', 'arm64'), []);
    assert.equal(prebuilds.choosePrebuild(found.filter((c) => c.file !== match), HOST, 9).chosen, null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// A package laid out as npm installs it, with the real install scripts, this
// project's libtorch, a fake prebuild and, in place of cmake-js, a stub that
// records that a compile was asked for.
function installLayout(sidecarOverrides: Record<string, unknown>): { dir: string; run: () => ReturnType<typeof spawnSync> } {
  const dir = tmpDir();
  const torch = projectTorch();
  const info = torchLocate.torchBuildInfo(torch.root);
  for (const f of ['build-native.js', 'torch-locate.js', 'prebuilds.js']) {
    fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'scripts', f), path.join(dir, 'scripts', f));
  }
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  writeFiles(dir, {
    'CMakeLists.txt': '',
    'native/addon.cc': '',
    'node_modules/cmake-js/bin/cmake-js': "require('fs').writeFileSync('compile-requested', process.argv.slice(2).join(' ')); process.exit(3);\n",
  });
  const here = buildNative.buildIdentity(torch.root, info);
  const folder = path.join(dir, 'prebuilds', `${here.platform}-${here.arch}`);
  writeFiles(folder, {
    'extrema.test.node': 'prebuilt bytes',
    'extrema.test.json': JSON.stringify({ ...sidecar(), platform: here.platform, arch: here.arch, libc: here.libc,
      torchVersion: info.version, torchVariant: info.variant, cxx11abi: info.cxx11abi, ...sidecarOverrides }),
  });
  const run = () => spawnSync(process.execPath, [path.join(dir, 'scripts', 'build-native.js')], {
    cwd: dir, encoding: 'utf8', env: { ...process.env, LIBTORCH: torch.root, EXTREMA_BUILD_FROM_SOURCE: '' },
  });
  return { dir, run };
}

test('the install step takes a matching prebuild instead of compiling and links this libtorch beside it', () => {
  const { dir, run } = installLayout({});
  try {
    const r = run();
    assert.equal(r.status, 0, String(r.stderr));
    assert.match(String(r.stderr), /using the prebuilt addon prebuilds\/.*extrema\.test\.node/);
    assert.equal(fs.existsSync(path.join(dir, 'compile-requested')), false);
    assert.equal(fs.readFileSync(path.join(dir, 'build', 'Release', 'extrema.node'), 'utf8'), 'prebuilt bytes');
    const torch = projectTorch();
    assert.equal(fs.readlinkSync(path.join(dir, 'build', 'Release', 'torch-lib')), torch.libDir);
    const stamp = JSON.parse(fs.readFileSync(path.join(dir, 'build', 'extrema-build.json'), 'utf8'));
    assert.equal(stamp.torchRoot, torch.root);
    assert.equal(stamp.builtFrom, path.join('prebuilds', `${process.platform}-${process.arch}`, 'extrema.test.node'));
    const again = run();
    assert.equal(again.status, 0, String(again.stderr));
    assert.match(String(again.stderr), /native addon is up to date/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the install step compiles when the only prebuild is for another torch', () => {
  const { dir, run } = installLayout({ torchVersion: '1.0.0' });
  try {
    const r = run();
    assert.match(String(r.stderr), /extrema\.test\.node does not fit: torchVersion is "1\.0\.0"/);
    assert.match(String(r.stderr), /compiling the native addon \(no addon built yet\)/);
    assert.match(fs.readFileSync(path.join(dir, 'compile-requested'), 'utf8'), /^build .*--CDTorch_DIR=/);
    assert.notEqual(r.status, 0, 'the stub compiler fails, so must the install step');
    assert.equal(fs.existsSync(path.join(dir, 'build', 'Release', 'extrema.node')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
