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

// timm, for its VisionTransformer (test/oracle/timm_vit.py) and augmentation
// code (test/oracle/timm_aug_oracle.py). Installed with --no-deps: its
// torchvision requirement has no CPU build for torch 2.13 (the oracles never
// import it), and pyyaml and huggingface_hub are not needed to build a model.
function ensureTimm() {
  // pillow (module PIL): timm's RandAugment ops work on PIL images.
  const missing = [['timm', 'timm'], ['PIL', 'pillow']].filter(([m]) => !works(LOCAL_SITE, `import importlib.util as u, sys; sys.exit(0 if u.find_spec("${m}") else 1)`)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  console.error(`[extrema] installing ${missing.join(', ')} (without dependencies) into ${path.relative(process.cwd(), LOCAL_SITE)}`);
  const t = spawnSync(python, ['-m', 'pip', 'install', '--no-deps', '--target', LOCAL_SITE, ...localIndexArgs(python), ...missing], { stdio: 'inherit' });
  if (t.status !== 0) {
    console.error(`[extrema] could not install ${missing.join(', ')} for python3; the fine-tuning tests need them`);
    process.exit(1);
  }
}

if (works(null) || works(LOCAL_SITE)) {
  ensureTimm();
  process.exit(0);
}
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
ensureTimm();
