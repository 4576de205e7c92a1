'use strict';
// `npm install` makes the addon here: locate libtorch, then take a matching
// prebuild (scripts/prebuilds.js) or compile with cmake-js. The build stamp
// (build/extrema-build.json) records what the addon was made against; a build
// newer than every native source with the same stamp is kept. Pass --force
// to compile anyway; EXTREMA_BUILD_FROM_SOURCE=1 ignores prebuilds.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { locateTorch, torchBuildInfo, ROOT } = require('./torch-locate');
const { hostLibc, listPrebuilds, choosePrebuild } = require('./prebuilds');

const RELEASE = path.join(ROOT, 'build', 'Release');
const OUTPUT = path.join(RELEASE, 'extrema.node');
const STAMP = path.join(ROOT, 'build', 'extrema-build.json');
const LEGACY_STAMP = path.join(ROOT, 'build', 'torch-location.txt');
const PREBUILDS = path.join(ROOT, 'prebuilds');
// The addon's rpath lists build/Release/torch-lib first (CMakeLists.txt), so
// a link there to the libtorch it was matched with wins over the absolute
// path baked in where it was compiled.
const TORCH_LINK = path.join(RELEASE, 'torch-lib');

// The Node-API version the addon is compiled for (package.json, as prebuild
// tools read it; CMakeLists.txt defines the same NAPI_VERSION).
function targetNapi() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return Math.max(...pkg.binary.napi_versions);
}

// Everything a compiled addon is tied to. `host` defaults to this process.
function buildIdentity(torchRoot, info, host = {}) {
  return {
    torchRoot,
    torchVersion: info.version,
    torchVariant: info.variant,
    cxx11abi: info.cxx11abi ?? null,
    napi: host.napi ?? targetNapi(),
    platform: host.platform ?? process.platform,
    arch: host.arch ?? process.arch,
    libc: host.libc ?? hostLibc(),
  };
}

const STAMP_KEYS = ['torchRoot', 'torchVersion', 'torchVariant', 'cxx11abi', 'napi', 'platform', 'arch', 'libc'];

// Why the addon must be made again, or null if the existing one fits.
// `stamp` is the previous identity (null if none); mtimes are in ms, with
// outputMtime null when there is no addon. kind: 'missing' | 'identity' | 'sources'.
function rebuildReason(stamp, current, { outputMtime, newestSourceMtime }) {
  if (outputMtime == null) return { kind: 'missing', message: 'no addon built yet' };
  if (!stamp) return { kind: 'missing', message: 'no build stamp' };
  for (const key of STAMP_KEYS) {
    const before = stamp[key] ?? null;
    const now = current[key] ?? null;
    if (before !== now) {
      return { kind: 'identity', message: `${key} changed from ${JSON.stringify(before)} to ${JSON.stringify(now)}` };
    }
  }
  if (outputMtime <= newestSourceMtime) return { kind: 'sources', message: 'native sources changed since the last build' };
  return null;
}

function newestSource() {
  const files = [path.join(ROOT, 'CMakeLists.txt')];
  // every file under native/, vendored headers included
  for (const e of fs.readdirSync(path.join(ROOT, 'native'), { recursive: true, withFileTypes: true })) {
    if (e.isFile()) files.push(path.join(e.parentPath ?? e.path, e.name));
  }
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(STAMP, 'utf8'));
  } catch {
    return null;
  }
}

function writeStamp(identity, builtFrom) {
  fs.writeFileSync(STAMP, JSON.stringify({ ...identity, builtFrom }, null, 2) + '\n');
  fs.rmSync(LEGACY_STAMP, { force: true });
}

// The located libtorch, the identity a build for it would have, and why the
// addon in build/Release does not have it (null if it does).
function currentBuild() {
  const torch = locateTorch();
  const identity = buildIdentity(torch.root, torchBuildInfo(torch.root));
  const outputMtime = fs.existsSync(OUTPUT) ? fs.statSync(OUTPUT).mtimeMs : null;
  const reason = rebuildReason(readStamp(), identity, { outputMtime, newestSourceMtime: newestSource() });
  return { torch, identity, reason, staleBecause: reason && reason.message };
}

function linkTorchLib(libDir) {
  if (process.platform === 'win32') return; // no rpath: libtorch's DLLs must be on PATH
  let target = null;
  try {
    target = fs.readlinkSync(TORCH_LINK);
  } catch {}
  if (target === libDir) return;
  fs.rmSync(TORCH_LINK, { force: true });
  fs.symlinkSync(libDir, TORCH_LINK, 'dir');
}

function compile(torch) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
  const args = [cmakeJs, 'build', '--parallel', jobs, `--CDTorch_DIR=${torch.configDir}`];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('[extrema] native build failed (see the compiler output above)');
    process.exit(r.status || 1);
  }
}

function usePrebuild(identity) {
  const { chosen, rejected } = choosePrebuild(listPrebuilds(PREBUILDS, identity.platform, identity.arch), identity, Number(process.versions.napi));
  for (const r of rejected) console.error(`[extrema] prebuild ${path.relative(ROOT, r.file)} does not fit: ${r.reason}`);
  if (!chosen) return null;
  fs.mkdirSync(RELEASE, { recursive: true });
  fs.copyFileSync(chosen.file, OUTPUT);
  return path.relative(ROOT, chosen.file);
}

function main() {
  const force = process.argv.includes('--force');
  let build;
  try {
    build = currentBuild();
  } catch (e) {
    console.error(`[extrema] ${e.message}`);
    process.exit(1);
  }
  const { torch, identity, reason } = build;
  console.error(`[extrema] libtorch ${identity.torchVersion}+${identity.torchVariant}: ${torch.root} (${torch.source})`);
  if (!force && !reason) {
    linkTorchLib(torch.libDir);
    console.error('[extrema] native addon is up to date');
    return;
  }
  if (!force && reason.kind !== 'sources' && !process.env.EXTREMA_BUILD_FROM_SOURCE) {
    const prebuild = usePrebuild(identity);
    if (prebuild) {
      linkTorchLib(torch.libDir);
      writeStamp(identity, prebuild);
      console.error(`[extrema] using the prebuilt addon ${prebuild}`);
      return;
    }
  }
  console.error(`[extrema] compiling the native addon (${force ? '--force' : reason.message})`);
  compile(torch);
  linkTorchLib(torch.libDir);
  writeStamp(identity, 'source');
}

module.exports = { buildIdentity, rebuildReason, currentBuild, STAMP_KEYS, OUTPUT, PREBUILDS };

if (require.main === module) main();
