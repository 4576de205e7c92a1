import type { Module } from './module';
import { PackableModule } from './inference-pack';
import { defaultPackedKernel, type PackedKernel } from '../tensor/packed-linear';

export interface PackReport {
  /** Linear layers now packed. */
  packed: number;
  /** Linear layers in the module: every Linear, and the patch embedding's projection (a linear map of flattened patches). */
  linears: number;
}

/**
 * Packs every Linear of `module` for inference (Linear.packForInference),
 * and the patch embedding's projection: forward passes with gradients off
 * on float32 CPU inputs then run the packed product (packLinearWeight), with
 * the MLPs' GELU inside it. Training is unaffected (gradients on take the
 * plain path) and packs follow weight changes, so this is a speed switch
 * only; `unpackAll` or dispose frees the copies (about the weights' size
 * again). The kernel: options.kernel, else defaultPackedKernel().
 */
export function packForInference(module: Module, options: { kernel?: PackedKernel } = {}): PackReport {
  const kernel = options.kernel ?? defaultPackedKernel();
  const all = linearsOf(module);
  return { packed: all.filter((m) => m.packForInference(kernel)).length, linears: all.length };
}

/** Drops every packed copy packForInference made. */
export function unpackAll(module: Module): void {
  for (const m of linearsOf(module)) m.unpack();
}

function linearsOf(module: Module): PackableModule[] {
  return [...module.namedModules()].flatMap(([, m]) => (m instanceof PackableModule ? [m] : []));
}

/**
 * Runs fn with every Linear of `module` packed (packForInference), and
 * unpacks afterwards the ones it packed: the evaluation loops' way to pay
 * for the copies only while they run. The kernel is defaultPackedKernel(),
 * as for serving, so both give the same features. enabled false runs fn as
 * it is.
 */
export async function withPackedLinears<T>(module: Module, enabled: boolean, fn: () => Promise<T>): Promise<T> {
  const kernel = enabled ? defaultPackedKernel() : null;
  const packedHere = enabled ? linearsOf(module).filter((m) => !m.isPacked && m.packForInference(kernel)) : [];
  try {
    return await fn();
  } finally {
    for (const m of packedHere) m.unpack();
  }
}
