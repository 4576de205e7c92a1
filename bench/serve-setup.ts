// What the two serving benchmarks (bench/serve.ts, bench/serve-forward.ts)
// set up alike: the demo model's checkpoint when none is given, and the
// Python environment their scripts run in (the oracle's, plus the packages
// pip-installed into <repo>/.bench-py: onnx, onnxruntime, fastapi, ...).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as et from '../lib';
import { ExtremaModel, saveCheckpoint } from '../lib/extrema';
import { pythonEnv } from '../test/helpers/oracle';

const ROOT = path.resolve(__dirname, '..', '..');

/** The demo preset's model (random init, seed 0) saved in `dir`, and a line describing it. */
export function demoCheckpoint(dir: string): { file: string; about: string } {
  const config = et.train.pretrainConfig({ preset: 'demo' }).model;
  const model = new ExtremaModel(config, { seed: 0 });
  const file = path.join(dir, 'model.safetensors');
  try {
    saveCheckpoint(file, model);
  } finally {
    model.dispose();
  }
  const e = config.encoder;
  return { file, about: `demo model, random init (${e.imgSize[0]} px, ${e.inChans} channel, patch ${e.patchSize}, width ${e.embedDim}, depth ${e.depth})` };
}

/** pythonEnv() with <repo>/.bench-py on PYTHONPATH when it exists. */
export function benchPythonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...pythonEnv() };
  const benchPy = path.join(ROOT, '.bench-py');
  if (fs.existsSync(benchPy)) env.PYTHONPATH = [env.PYTHONPATH, benchPy].filter(Boolean).join(path.delimiter);
  return env;
}
