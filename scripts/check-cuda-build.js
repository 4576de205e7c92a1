'use strict';
// Opt-in check (npm run check:cuda-build [-- SCRATCH_DIR]) that the addon
// builds against a CUDA torch on any Linux machine, GPU or not: installs a
// CUDA pip torch and the nvidia-* wheels it names (several GB) with
// `pip --no-deps` into a scratch folder, copies the project there, runs
// `npm install` with LIBTORCH pointing at that torch, once with the CUDA
// toolkit hidden from CMake and once with it (when this machine has one),
// then loads each build: the build with the toolkit must have NCCL (the
// toolkit's runtime headers with the wheels' library headers and nccl.h),
// and without a GPU, NCCL must refuse with a reason. The torch is pip-installed without resolving its
// dependencies because some (cuda-bindings, triton) are Python-only and
// not needed by libtorch. EXTREMA_CUDA_TORCH_SPEC picks the torch
// (default torch==2.14.1, a CUDA 13 build on Linux).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { localIndexArgs, ROOT } = require('./torch-locate');

const SPEC = process.env.EXTREMA_CUDA_TORCH_SPEC || 'torch==2.14.1';
const PYTHON = process.env.PYTHON || 'python3';
const SCRATCH = path.resolve(process.argv[2] || path.join(os.tmpdir(), 'extrema-cuda-build'));
const WHEELS = path.join(SCRATCH, 'wheels');
const SITE = path.join(SCRATCH, 'site');
const TORCH = path.join(SITE, 'torch');
// Not copied: build outputs and local state that the fresh install remakes.
const SKIP = new Set(['build', 'node_modules', 'dist', '.libtorch', 'runs', '.device', 'prebuilds', '.git']);

function fail(message) {
  console.error(`[check-cuda-build] FAILED: ${message}`);
  process.exit(1);
}

function log(message) {
  console.error(`[check-cuda-build] ${message}`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8', ...opts });
  if (r.error) fail(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0) fail(`${[cmd, ...args].join(' ')} exited with ${r.status}${opts.cwd ? ` (in ${opts.cwd})` : ''}`);
  return r.stdout;
}

// The requirements a wheel's METADATA names for this platform (with the
// given extras), one per line, markers evaluated by pip's own packaging.
const REQUIRES_PY = `
import sys, zipfile
from pip._vendor.packaging.requirements import Requirement
wheel, extras = sys.argv[1], [e for e in sys.argv[2].split(',') if e] or ['']
with zipfile.ZipFile(wheel) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    lines = z.read(meta).decode().splitlines()
for line in lines:
    if line.startswith('Requires-Dist:'):
        r = Requirement(line.split(':', 1)[1].strip())
        if r.marker is None or any(r.marker.evaluate({'extra': e}) for e in extras):
            print(r.name + ('[' + ','.join(sorted(r.extras)) + ']' if r.extras else '') + str(r.specifier))
`;

function requirements(wheel, extras = []) {
  return run(PYTHON, ['-c', REQUIRES_PY, wheel, extras.join(',')], { capture: true }).split('\n').filter(Boolean);
}

// pip download one requirement (no dependencies); returns the wheel's path.
function download(spec, index) {
  const out = run(PYTHON, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-d', WHEELS, ...index, spec], { capture: true });
  const saved = /(?:Saved|File was already downloaded) (\S+\.whl)/.exec(out);
  if (!saved) fail(`pip download ${spec} did not say which wheel it saved`);
  return path.resolve(saved[1]);
}

function installTorch() {
  if (fs.existsSync(path.join(TORCH, 'lib', 'libtorch_cuda.so'))) {
    log(`reusing the torch in ${SITE}`);
    return;
  }
  const index = localIndexArgs(PYTHON);
  log(`downloading ${SPEC} ...`);
  const torchWheel = download(SPEC, index);
  const wheels = [torchWheel];
  const specs = [];
  // torch names the nvidia libraries itself and through cuda-toolkit[...]
  // extras; everything else it requires is for Python only.
  for (const req of requirements(torchWheel)) {
    const toolkit = /^cuda-toolkit(?:\[([^\]]*)\])?(.*)$/.exec(req);
    if (toolkit) {
      const wheel = download(`cuda-toolkit${toolkit[2]}`, index);
      wheels.push(wheel);
      specs.push(...requirements(wheel, (toolkit[1] || '').split(',')).filter((r) => r.startsWith('nvidia-')));
    } else if (req.startsWith('nvidia-')) {
      specs.push(req);
    }
  }
  if (!specs.some((s) => s.startsWith('nvidia-'))) fail(`${SPEC} names no nvidia-* wheel: is it a CUDA build?`);
  // One pip call: with --target, a second call would not merge into the
  // nvidia/ folder the first one made.
  const unique = [...new Set(specs)];
  log(`installing torch and ${unique.length} CUDA wheels into ${SITE}: ${unique.join(' ')}`);
  fs.rmSync(SITE, { recursive: true, force: true });
  run(PYTHON, ['-m', 'pip', 'install', '--no-deps', '--target', SITE, ...index, ...wheels, ...unique]);
  if (!fs.existsSync(path.join(TORCH, 'lib', 'libtorch_cuda.so'))) fail(`${SPEC} installed no lib/libtorch_cuda.so: not a CUDA build`);
}

// Where this machine has a CUDA toolkit: nvcc on PATH, CUDA_HOME/CUDA_PATH,
// or the usual /usr/local/cuda*.
function toolkitDirs() {
  const bins = new Set();
  const roots = new Set();
  const candidates = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDAToolkit_ROOT']) if (process.env[v]) candidates.push(path.join(process.env[v], 'bin'));
  if (fs.existsSync('/usr/local')) for (const d of fs.readdirSync('/usr/local')) if (/^cuda/.test(d)) candidates.push(path.join('/usr/local', d, 'bin'));
  for (const bin of candidates) {
    if (!fs.existsSync(path.join(bin, 'nvcc'))) continue;
    bins.add(bin);
    // A wrapper nvcc (say in /usr/local/bin) does not make its parent a toolkit.
    if (fs.existsSync(path.join(bin, '..', 'include', 'cuda_runtime.h'))) roots.add(path.dirname(bin));
  }
  return { bins: [...bins], roots: [...roots] };
}

// An environment in which CMake sees no CUDA toolkit: its folders are on
// CMake's ignore lists (a toolchain file, which CMake reads from the
// environment), and the variables pointing at it are gone. A folder with a
// wrapper nvcc (say /usr/local/bin) is hidden whole, with all else in it.
function hiddenToolkitEnv(toolkit) {
  const file = path.join(SCRATCH, 'hide-cuda-toolkit.cmake');
  const list = (dirs) => dirs.map((d) => JSON.stringify(d)).join(' ');
  // Include folders too: CMakeLists.txt names the toolkit's as a hint for NCCL's headers.
  const ignored = [...toolkit.bins, ...toolkit.roots.map((r) => path.join(r, 'include'))];
  fs.writeFileSync(file, `set(CMAKE_IGNORE_PATH ${list(ignored)})\nset(CMAKE_IGNORE_PREFIX_PATH ${list(toolkit.roots)})\n`);
  const env = { ...process.env, CMAKE_TOOLCHAIN_FILE: file };
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDACXX', 'CUDAToolkit_ROOT']) delete env[v];
  return env;
}

function buildAndLoad(label, env, expectNccl) {
  const project = path.join(SCRATCH, `project-${label}`);
  log(`[${label}] copying the project to ${project}`);
  fs.rmSync(project, { recursive: true, force: true });
  fs.cpSync(ROOT, project, { recursive: true, filter: (src) => path.dirname(src) !== ROOT || !SKIP.has(path.basename(src)) });
  const buildEnv = { ...env, LIBTORCH: TORCH, EXTREMA_BUILD_FROM_SOURCE: '1' };
  delete buildEnv.Torch_DIR;
  log(`[${label}] npm install with LIBTORCH=${TORCH} ...`);
  const started = Date.now();
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: project, env: buildEnv });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  // Without a GPU, NCCL must refuse with a reason: from JavaScript, and from
  // the native side too (ProcessGroupNCCL's own check), not crash.
  const probe = `
    const et = require('./dist/lib');
    const { native } = require('./dist/lib/native');
    const nccl = et.distributed.available().nccl;
    const refusals = async () => {
      if (!nccl || et.cuda.isAvailable()) return null;
      const said = [];
      for (const init of [
        () => et.distributed.ProcessGroup.init({ worldSize: 1, rank: 0, masterPort: 29000 + process.pid % 1000, backend: 'nccl' }),
        () => native.distInit({ host: '127.0.0.1', port: 30000 + process.pid % 1000, rank: 0, size: 1, isServer: true, timeoutMs: 5000, prefix: 'probe/', nccl: true }),
      ]) said.push(await init().then(() => 'accepted', (e) => e.message));
      return said;
    };
    refusals().then((said) => console.log(JSON.stringify({ torch: et.versions().torch, cuda: et.cuda.isAvailable(), nccl, said })));`;
  const out = run(process.execPath, ['-e', probe], { cwd: project, env: buildEnv, capture: true });
  const loaded = JSON.parse(out.trim().split('\n').pop());
  const expected = (/^__version__\s*=\s*'([^'+]+)/m.exec(fs.readFileSync(path.join(TORCH, 'version.py'), 'utf8')) || [])[1];
  if (loaded.torch !== expected) fail(`[${label}] the addon reports torch ${loaded.torch}, expected ${expected}`);
  const ldd = spawnSync('ldd', [path.join(project, 'build', 'Release', 'extrema.node')], { encoding: 'utf8' });
  if (ldd.status === 0 && !/libtorch_cuda\.so/.test(ldd.stdout)) fail(`[${label}] the addon does not link libtorch_cuda.so: CUDA kernels would not register`);
  if (expectNccl && !loaded.nccl) fail(`[${label}] built without NCCL although a CUDA toolkit and the nvidia wheels' headers are here (see the "extrema: torch.distributed" line of the build output)`);
  if (loaded.said) {
    const [js, nat] = loaded.said;
    if (!/Expected a CUDA device for backend "nccl"/.test(js)) fail(`[${label}] backend "nccl" without a GPU: ${js}`);
    if (!/no GPUs found/.test(nat)) fail(`[${label}] the native NCCL group without a GPU: ${nat}`);
  }
  log(`[${label}] OK in ${seconds}s: built against torch ${loaded.torch}, cuda.isAvailable() = ${loaded.cuda}, NCCL ${loaded.nccl ? 'built in' : 'not built (Gloo alone)'}${loaded.said ? `; without a GPU it refuses: ${loaded.said.join(' / ')}` : ''}`);
}

function main() {
  if (process.platform !== 'linux') fail('CUDA pip wheels exist for Linux only');
  if (`${SCRATCH}${path.sep}`.startsWith(`${ROOT}${path.sep}`)) fail(`the scratch folder ${SCRATCH} must lie outside the project`);
  fs.mkdirSync(SCRATCH, { recursive: true });
  installTorch();
  const toolkit = toolkitDirs();
  buildAndLoad('no-toolkit', hiddenToolkitEnv(toolkit), false);
  if (toolkit.bins.length > 0) buildAndLoad('toolkit', process.env, toolkit.roots.length > 0);
  else log('no CUDA toolkit on this machine: skipped the build with one');
  log(`all builds passed (scratch folder: ${SCRATCH})`);
}

main();
