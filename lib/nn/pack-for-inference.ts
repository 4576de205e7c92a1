import { Linear } from './linear';
import type { Module } from './module';

export interface PackReport {
  /** Linear layers now packed. */
  packed: number;
  /** Linear layers in the module. */
  linears: number;
}

/**
 * Packs every Linear of `module` for oneDNN inference (Linear.packForInference):
 * forward passes with gradients off on float32 CPU inputs then run the packed
 * product, with the MLPs' GELU inside it. Training is unaffected (gradients
 * on take the plain path) and packs follow weight changes, so this is a
 * speed switch only; `unpackAll` or dispose frees the copies (about the
 * weights' size again).
 */
export function packForInference(module: Module): PackReport {
  const all = linearsOf(module);
  return { packed: all.filter((m) => m.packForInference()).length, linears: all.length };
}

/** Drops every packed copy packForInference made. */
export function unpackAll(module: Module): void {
  for (const m of linearsOf(module)) m.unpack();
}

function linearsOf(module: Module): Linear[] {
  return [...module.namedModules()].flatMap(([, m]) => (m instanceof Linear ? [m] : []));
}

/**
 * Runs fn with every Linear of `module` packed (packForInference), and
 * unpacks afterwards the ones it packed: the evaluation loops' way to pay
 * for the copies only while they run. enabled false runs fn as it is.
 */
export async function withPackedLinears<T>(module: Module, enabled: boolean, fn: () => Promise<T>): Promise<T> {
  const packedHere = enabled ? linearsOf(module).filter((m) => !m.isPacked && m.packForInference()) : [];
  try {
    return await fn();
  } finally {
    for (const m of packedHere) m.unpack();
  }
}
