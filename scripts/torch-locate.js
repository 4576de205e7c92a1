'use strict';
// Finds a libtorch for the native build, in this order:
//   1. an explicit path from the environment: LIBTORCH (a libtorch distribution
//      or any folder holding share/cmake/Torch) or Torch_DIR (the folder with
//      TorchConfig.cmake);
//   2. the torch package of a Python interpreter (PYTHON, else python3);
//   3. a torch installed earlier by this script into .libtorch/site;
//   4. installing one there with pip (EXTREMA_TORCH_SPEC, default torch==2.13.0+cpu).
// Used by build-native.js (cmake-js) and binding.gyp (node-gyp).
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const LOCAL_SITE = path.join(ROOT, '.libtorch', 'site');
const DEFAULT_SPEC = 'torch==2.13.0+cpu';

function configDirOf(prefix) {
  for (const rel of ['share/cmake/Torch', 'torch/share/cmake/Torch']) {
    const dir = path.join(prefix, rel);
    if (fs.existsSync(path.join(dir, 'TorchConfig.cmake'))) return dir;
  }
  return null;
}

// From Torch_DIR (…/share/cmake/Torch) back to the libtorch root.
function rootOfConfigDir(configDir) {
  return path.resolve(configDir, '..', '..', '..');
}

function describe(root, source) {
  return {
    source,
    root,
    configDir: path.join(root, 'share', 'cmake', 'Torch'),
    includeDirs: [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')],
    libDir: path.join(root, 'lib'),
    // What to link for node-gyp; CUDA libraries are forced in (the addon
    // names no CUDA symbol, but must load them to see CUDA devices).
    libs: linkFlags(path.join(root, 'lib')),
  };
}

function linkFlags(libDir) {
  const has = (name) => fs.existsSync(path.join(libDir, `lib${name}.so`)) || fs.existsSync(path.join(libDir, `${name}.lib`)) || fs.existsSync(path.join(libDir, `lib${name}.dylib`));
  const flags = [`-L${libDir}`, '-ltorch', '-ltorch_cpu', '-lc10'];
  const cuda = ['torch_cuda', 'c10_cuda'].filter(has);
  if (cuda.length > 0 && process.platform === 'linux') flags.push('-Wl,--no-as-needed', ...cuda.map((l) => `-l${l}`), '-Wl,--as-needed');
  if (process.platform !== 'win32') flags.push(`-Wl,-rpath,${libDir}`);
  return flags;
}

function fromEnvironment() {
  const explicit = process.env.LIBTORCH || process.env.LIBTORCH_DIR;
  if (explicit) {
    const configDir = configDirOf(explicit);
    if (!configDir) throw new Error(`LIBTORCH=${explicit} holds no share/cmake/Torch/TorchConfig.cmake`);
    return describe(rootOfConfigDir(configDir), `LIBTORCH=${explicit}`);
  }
  const torchDir = process.env.Torch_DIR || process.env.TORCH_DIR;
  if (torchDir) {
    if (!fs.existsSync(path.join(torchDir, 'TorchConfig.cmake'))) {
      throw new Error(`Torch_DIR=${torchDir} holds no TorchConfig.cmake`);
    }
    return describe(rootOfConfigDir(torchDir), `Torch_DIR=${torchDir}`);
  }
  return null;
}

// The environment with `extraPath` (if any) in front of PYTHONPATH.
function envWithPythonPath(extraPath) {
  const env = { ...process.env };
  if (extraPath) env.PYTHONPATH = extraPath + (env.PYTHONPATH ? path.delimiter + env.PYTHONPATH : '');
  return env;
}

function pythonTorch(python, extraPath) {
  const r = spawnSync(python, ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'], {
    encoding: 'utf8',
    env: envWithPythonPath(extraPath),
  });
  if (r.status !== 0 || !r.stdout) return null;
  const dir = r.stdout.trim().split('\n').pop();
  return fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake')) ? dir : null;
}

// pip here may be configured with local file:// indexes; pointing --index-url
// at them avoids minutes of retries against an unreachable public index.
function localIndexArgs(python) {
  const r = spawnSync(python, ['-m', 'pip', 'config', 'list'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const urls = [];
  for (const line of r.stdout.split('\n')) {
    const m = /index-url='([^']*)'/.exec(line);
    if (m) for (const u of m[1].split(/\s+/)) if (u.startsWith('file://')) urls.push(u);
  }
  if (urls.length === 0) return [];
  return ['--index-url', urls[0], ...urls.slice(1).flatMap((u) => ['--extra-index-url', u])];
}

function installLocal(python) {
  const spec = process.env.EXTREMA_TORCH_SPEC || DEFAULT_SPEC;
  const args = ['-m', 'pip', 'install', '--target', LOCAL_SITE, ...localIndexArgs(python), spec];
  console.error(`[extrema] no libtorch found; installing ${spec} into ${path.relative(ROOT, LOCAL_SITE)} ...`);
  const r = spawnSync(python, args, { stdio: 'inherit' });
  return r.status === 0;
}

const HOW_TO =
  'Could not find libtorch. Do one of: set LIBTORCH to an unpacked libtorch download ' +
  '(https://pytorch.org/get-started/locally/), set Torch_DIR to a folder with TorchConfig.cmake, ' +
  'or install PyTorch for python3 (python3 -m pip install torch) and run npm install again.';

function locateTorch({ install = true } = {}) {
  const env = fromEnvironment();
  if (env) return env;
  const python = process.env.PYTHON || 'python3';
  const system = pythonTorch(python);
  if (system) return describe(system, `${python} torch`);
  const local = pythonTorch(python, LOCAL_SITE);
  if (local) return describe(local, 'project-local .libtorch/site');
  if (install && installLocal(python)) {
    const installed = pythonTorch(python, LOCAL_SITE);
    if (installed) return describe(installed, 'project-local .libtorch/site (installed now)');
  }
  throw new Error(HOW_TO);
}

// What a build depends on besides the path: torch's version, its flavour
// (cpu, cu128, rocm6.2, ...) and, where TorchConfig.cmake says, the C++ ABI.
// Read from files so that no Python has to start: torch/version.py (pip
// wheels), build-version (libtorch downloads), else TorchConfigVersion.cmake.
function torchBuildInfo(root) {
  const read = (rel) => {
    try {
      return fs.readFileSync(path.join(root, rel), 'utf8');
    } catch {
      return null;
    }
  };
  let full = null;
  let cuda = null;
  const versionPy = read('version.py');
  if (versionPy) {
    full = (/^__version__\s*=\s*['"]([^'"]+)['"]/m.exec(versionPy) || [])[1] || null;
    cuda = (/^cuda\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]/m.exec(versionPy) || [])[1] || null;
  }
  if (!full) full = (read('build-version') || '').trim() || null;
  if (!full) {
    const cmakeVersion = read(path.join('share', 'cmake', 'Torch', 'TorchConfigVersion.cmake')) || '';
    full = (/PACKAGE_VERSION\s+"([^"]+)"/.exec(cmakeVersion) || [])[1] || null;
  }
  if (!full) throw new Error(`Could not read the torch version under ${root} (no version.py, build-version or TorchConfigVersion.cmake)`);
  const [version, local] = full.split('+');
  const hasCudaLib = ['libtorch_cuda.so', 'torch_cuda.dll', 'torch_cuda.lib'].some((f) => fs.existsSync(path.join(root, 'lib', f)));
  const variant = local || (cuda ? `cu${cuda.replace('.', '')}` : hasCudaLib ? 'cuda' : 'cpu');
  const config = read(path.join('share', 'cmake', 'Torch', 'TorchConfig.cmake')) || '';
  const abi = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(config);
  return { version, variant, cxx11abi: abi ? Number(abi[1]) : null };
}

module.exports = { locateTorch, torchBuildInfo, localIndexArgs, envWithPythonPath, LOCAL_SITE, ROOT };

// node scripts/torch-locate.js <field>: prints one field, for binding.gyp.
if (require.main === module) {
  try {
    const t = locateTorch();
    const field = process.argv[2] || 'root';
    const value = t[field === 'include' ? 'includeDirs' : field];
    console.log(Array.isArray(value) ? value.join(' ') : value);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
