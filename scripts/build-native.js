'use strict';
// `npm install` builds the addon here: locate libtorch, then cmake-js.
// A build that is newer than every native source and made against the same
// libtorch is kept; pass --force to rebuild anyway.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { locateTorch, ROOT } = require('./torch-locate');

const OUTPUT = path.join(ROOT, 'build', 'Release', 'extrema.node');
const STAMP = path.join(ROOT, 'build', 'torch-location.txt');

function newestSource() {
  const files = [path.join(ROOT, 'CMakeLists.txt')];
  for (const f of fs.readdirSync(path.join(ROOT, 'native'))) files.push(path.join(ROOT, 'native', f));
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

function upToDate(torchRoot) {
  if (!fs.existsSync(OUTPUT) || !fs.existsSync(STAMP)) return false;
  if (fs.readFileSync(STAMP, 'utf8') !== torchRoot) return false;
  return fs.statSync(OUTPUT).mtimeMs > newestSource();
}

function main() {
  let torch;
  try {
    torch = locateTorch();
  } catch (e) {
    console.error(`[extrema] ${e.message}`);
    process.exit(1);
  }
  console.error(`[extrema] libtorch: ${torch.root} (${torch.source})`);
  if (!process.argv.includes('--force') && upToDate(torch.root)) {
    console.error('[extrema] native addon is up to date');
    return;
  }
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const jobs = String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
  const args = [cmakeJs, 'build', '--parallel', jobs, `--CDTorch_DIR=${torch.configDir}`];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('[extrema] native build failed (see the compiler output above)');
    process.exit(r.status || 1);
  }
  fs.writeFileSync(STAMP, torch.root);
}

main();
