// The build stamp: what a compiled addon is tied to (torch version, flavour,
// root, Node-API, platform) and when the install step must make it again.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildNative, projectTorch, torchLocate, tmpDir, writeFiles, type BuildIdentity } from './scripts';

const HOST = { napi: 8, platform: 'linux', arch: 'x64', libc: 'glibc' };
const INFO = { version: '2.13.0', variant: 'cpu', cxx11abi: null };

function identity(overrides: Partial<BuildIdentity> = {}): BuildIdentity {
  return { ...buildNative.buildIdentity('/opt/torch', INFO, HOST), ...overrides };
}

const FRESH = { outputMtime: 2000, newestSourceMtime: 1000 };

test('an addon built for the same torch, newer than its sources, is kept', () => {
  assert.equal(buildNative.rebuildReason(identity(), identity(), FRESH), null);
});

test('a different torch version, flavour, root or Node-API means a rebuild, naming what changed', () => {
  const before = identity({ torchVersion: '2.12.1' });
  assert.deepEqual(buildNative.rebuildReason(before, identity(), FRESH), {
    kind: 'identity',
    message: 'torchVersion changed from "2.12.1" to "2.13.0"',
  });
  for (const [key, value] of [['torchVariant', 'cu128'], ['torchRoot', '/usr/lib/torch'], ['napi', 9], ['arch', 'arm64'], ['cxx11abi', 0]] as const) {
    const reason = buildNative.rebuildReason(identity({ [key]: value }), identity(), FRESH);
    assert.equal(reason?.kind, 'identity', key);
    assert.match(reason!.message, new RegExp(`^${key} changed`), key);
  }
});

test('no addon, no stamp, or sources newer than the addon mean a rebuild', () => {
  assert.equal(buildNative.rebuildReason(identity(), identity(), { outputMtime: null, newestSourceMtime: 1 })?.kind, 'missing');
  assert.equal(buildNative.rebuildReason(null, identity(), FRESH)?.kind, 'missing');
  const stale = buildNative.rebuildReason(identity(), identity(), { outputMtime: 1000, newestSourceMtime: 1000 });
  assert.equal(stale?.kind, 'sources');
});

test('the identity records torch, Node-API (from package.json) and the host', () => {
  const id = buildNative.buildIdentity('/t', { version: '2.13.0', variant: 'cu128', cxx11abi: 1 });
  assert.equal(id.torchRoot, '/t');
  assert.equal(id.torchVersion, '2.13.0');
  assert.equal(id.torchVariant, 'cu128');
  assert.equal(id.cxx11abi, 1);
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  assert.equal(id.napi, Math.max(...pkg.binary.napi_versions));
  assert.equal(id.platform, process.platform);
  assert.equal(id.arch, process.arch);
  assert.deepEqual(Object.keys(id).sort(), [...buildNative.STAMP_KEYS].sort());
});

test('torch version and flavour are read from a pip wheel, a libtorch download or the CMake config', () => {
  const dir = tmpDir();
  try {
    const cmake = 'share/cmake/Torch/';
    writeFiles(path.join(dir, 'wheel-cpu'), { 'version.py': "__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n" });
    writeFiles(path.join(dir, 'wheel-cuda'), { 'version.py': "__version__ = '2.13.0'\ncuda: Optional[str] = '12.8'\n" });
    writeFiles(path.join(dir, 'zip'), {
      'build-version': '2.9.1+cu126\n',
      [`${cmake}TorchConfig.cmake`]: 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")\n',
    });
    writeFiles(path.join(dir, 'cmake-only'), {
      [`${cmake}TorchConfigVersion.cmake`]: 'set(PACKAGE_VERSION "2.11.0")\n',
      'lib/libtorch_cuda.so': '',
    });
    writeFiles(path.join(dir, 'none'), { 'README': '' });
    assert.deepEqual(torchLocate.torchBuildInfo(path.join(dir, 'wheel-cpu')), { version: '2.13.0', variant: 'cpu', cxx11abi: null });
    assert.deepEqual(torchLocate.torchBuildInfo(path.join(dir, 'wheel-cuda')), { version: '2.13.0', variant: 'cu128', cxx11abi: null });
    assert.deepEqual(torchLocate.torchBuildInfo(path.join(dir, 'zip')), { version: '2.9.1', variant: 'cu126', cxx11abi: 0 });
    assert.deepEqual(torchLocate.torchBuildInfo(path.join(dir, 'cmake-only')), { version: '2.11.0', variant: 'cuda', cxx11abi: null });
    assert.throws(() => torchLocate.torchBuildInfo(path.join(dir, 'none')), /Could not read the torch version under .*none/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the torch this project builds against reports the version its Python package declares', () => {
  const torch = projectTorch();
  const info = torchLocate.torchBuildInfo(torch.root);
  const distInfo = fs.readdirSync(path.dirname(torch.root)).find((n) => /^torch-.*\.dist-info$/.test(n));
  if (!distInfo) return; // a libtorch download: no pip metadata to compare with
  const declared = /^torch-([^+]+)(?:\+(.+))?\.dist-info$/.exec(distInfo)!;
  assert.equal(info.version, declared[1]);
  if (declared[2]) assert.equal(info.variant, declared[2]);
});
