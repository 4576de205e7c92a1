'use strict';
// Prebuilt addons: prebuilds/<platform>-<arch>/<name>.node (node-gyp-build's
// layout) with a sidecar <name>.json naming everything the binary is tied to.
// node-gyp-build matches platform, arch, libc and Node-API only; a libtorch
// addon also needs the very torch version and flavour it was compiled
// against, so the install step (build-native.js) picks a prebuild here and
// copies it to build/Release, where node-gyp-build looks first.
//
//   node scripts/prebuilds.js [--out <dir>]   saves the current build as a prebuild
const fs = require('node:fs');
const path = require('node:path');

// The fields a prebuild must share with the machine it is installed on.
// torchRoot is absent: a prebuild finds libtorch through build/Release/torch-lib.
const MATCHED_KEYS = ['platform', 'arch', 'libc', 'torchVersion', 'torchVariant', 'cxx11abi'];

function hostLibc(platform = process.platform) {
  if (platform !== 'linux') return '';
  // The same test node-gyp-build makes.
  return fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
}

function prebuildFileName(identity) {
  const libc = identity.libc ? `.${identity.libc}` : '';
  return `extrema.napi${libc}.torch-${identity.torchVersion}-${identity.torchVariant}.node`;
}

// Why `prebuild` (a sidecar's contents) cannot run here, or null if it can.
// `hostNapi` is the Node-API version of the running Node.
function prebuildMismatch(prebuild, host, hostNapi) {
  for (const key of MATCHED_KEYS) {
    const want = host[key] ?? null;
    const have = prebuild[key] ?? null;
    if (want !== have) return `${key} is ${JSON.stringify(have)}, this machine needs ${JSON.stringify(want)}`;
  }
  if (!Number.isInteger(prebuild.napi)) return `napi is ${JSON.stringify(prebuild.napi)}, expected an integer`;
  if (prebuild.napi > hostNapi) return `needs Node-API ${prebuild.napi}, this Node has ${hostNapi}`;
  return null;
}

// Every prebuild for one platform-arch folder: [{ file, identity }], or
// [{ file, error }] for a sidecar that cannot be read or has no binary.
function listPrebuilds(prebuildsDir, platform, arch) {
  const dir = path.join(prebuildsDir, `${platform}-${arch}`);
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const found = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const file = path.join(dir, name.replace(/\.json$/, '.node'));
    try {
      const identity = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
      if (!fs.existsSync(file)) throw new Error(`${path.basename(file)} is missing`);
      found.push({ file, identity });
    } catch (e) {
      found.push({ file, error: e.message });
    }
  }
  return found;
}

// The first candidate that fits the host, and why each other one did not.
function choosePrebuild(candidates, host, hostNapi) {
  const rejected = [];
  for (const c of candidates) {
    const reason = c.error || prebuildMismatch(c.identity, host, hostNapi);
    if (!reason) return { chosen: c, rejected };
    rejected.push({ file: c.file, reason });
  }
  return { chosen: null, rejected };
}

// Copies `addon` into prebuildsDir with its sidecar; returns the .node path.
function savePrebuild(addon, identity, prebuildsDir) {
  const dir = path.join(prebuildsDir, `${identity.platform}-${identity.arch}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, prebuildFileName(identity));
  fs.copyFileSync(addon, file);
  const sidecar = { napi: identity.napi };
  for (const key of MATCHED_KEYS) sidecar[key] = identity[key] ?? null;
  fs.writeFileSync(file.replace(/\.node$/, '.json'), JSON.stringify(sidecar, null, 2) + '\n');
  return file;
}

module.exports = { MATCHED_KEYS, hostLibc, prebuildFileName, prebuildMismatch, listPrebuilds, choosePrebuild, savePrebuild };

if (require.main === module) {
  const { currentBuild, OUTPUT, PREBUILDS } = require('./build-native');
  const at = process.argv.indexOf('--out');
  const out = at >= 0 ? path.resolve(process.argv[at + 1] || '') : PREBUILDS;
  try {
    const { identity, staleBecause } = currentBuild();
    if (staleBecause) throw new Error(`The addon in build/Release is not current (${staleBecause}); run "npm run build" first`);
    console.log(savePrebuild(OUTPUT, identity, out));
  } catch (e) {
    console.error(`[extrema] ${e.message}`);
    process.exit(1);
  }
}
