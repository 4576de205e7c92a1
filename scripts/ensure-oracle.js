'use strict';
// The tests compare against PyTorch in Python (torch, numpy, safetensors).
// This makes sure an interpreter has them: the system python3, or the
// project-local .libtorch/site, installing what is missing there with pip.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { LOCAL_SITE, localIndexArgs, envWithPythonPath } = require('./torch-locate');

const python = process.env.PYTHON || 'python3';
const probe = 'import torch, numpy, safetensors';

function works(extra, code = probe) {
  return spawnSync(python, ['-c', code], { env: envWithPythonPath(extra), stdio: 'ignore' }).status === 0;
}

if (works(null)) process.exit(0);
if (works(LOCAL_SITE)) process.exit(0);
// A torch the interpreter already has (or one installed by the native build)
// is reused; only the missing helpers go into .libtorch/site.
const torchThere = fs.existsSync(path.join(LOCAL_SITE, 'torch')) || works(null, 'import torch');
const wanted = ['numpy', 'safetensors'].filter((m) => !works(null, `import ${m}`) && !fs.existsSync(path.join(LOCAL_SITE, m)));
if (!torchThere) wanted.unshift(process.env.EXTREMA_TORCH_SPEC || 'torch==2.13.0+cpu');
console.error(`[extrema] installing the test oracle (${wanted.join(', ')}) into ${path.relative(process.cwd(), LOCAL_SITE)}`);
const r = spawnSync(python, ['-m', 'pip', 'install', '--target', LOCAL_SITE, ...localIndexArgs(python), ...wanted], { stdio: 'inherit' });
if (r.status !== 0 || !works(LOCAL_SITE)) {
  console.error('[extrema] could not install torch, numpy and safetensors for python3; the tests need them');
  process.exit(1);
}
