// Runs PyTorch in Python as the independent oracle. Tensors travel both ways
// as safetensors files, read on the Python side by the `safetensors` package.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSafetensors, saveSafetensors, type Tensor } from '../../lib';
import { tmpDir } from './tmp-dir';

export { tmpDir };

const ROOT = path.resolve(__dirname, '..', '..', '..');
const LOCAL_SITE = path.join(ROOT, '.libtorch', 'site');
export const ORACLE_DIR = path.join(ROOT, 'test', 'oracle');

let cachedEnv: NodeJS.ProcessEnv | undefined;

export function pythonEnv(): NodeJS.ProcessEnv {
  if (cachedEnv) return cachedEnv;
  const python = process.env.PYTHON || 'python3';
  // find_spec locates the packages without importing torch (3-4 s on a busy 2-core machine).
  const probe = (env: NodeJS.ProcessEnv) =>
    spawnSync(python, ['-c', 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") and u.find_spec("safetensors") else 1)'], { env, stdio: 'ignore' }).status === 0;
  const plain: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '2' };
  if (probe(plain)) return (cachedEnv = plain);
  const local = { ...plain, PYTHONPATH: LOCAL_SITE + (plain.PYTHONPATH ? path.delimiter + plain.PYTHONPATH : '') };
  if (probe(local)) return (cachedEnv = local);
  throw new Error('PyTorch for python3 is missing: run "npm test" (its pretest step installs it) or install torch and safetensors');
}

/** Runs an oracle script: python3 <script> <spec.json> <inputs.safetensors> <outputs.safetensors>. */
export function runOracle(script: string, spec: unknown, inputs: Record<string, Tensor> | Map<string, Tensor>): Map<string, Tensor> {
  const dir = tmpDir();
  try {
    const specFile = path.join(dir, 'spec.json');
    const inFile = path.join(dir, 'in.safetensors');
    const outFile = path.join(dir, 'out.safetensors');
    fs.writeFileSync(specFile, JSON.stringify(spec));
    saveSafetensors(inFile, inputs);
    const r = spawnSync(process.env.PYTHON || 'python3', [path.join(ORACLE_DIR, script), specFile, inFile, outFile], {
      env: pythonEnv(),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`oracle ${script} failed (${r.status}):\n${r.stderr}`);
    return loadSafetensors(outFile).tensors;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs inline Python; returns stdout. */
export function runPython(code: string, args: string[] = []): string {
  const r = spawnSync(process.env.PYTHON || 'python3', ['-c', code, ...args], { env: pythonEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}
