// Layering of recipe sources: preset < --config file < flags.
import { isPlainObject } from '../checks';

/** Every field optional, at every depth; arrays (tuples) are replaced whole, so they stay as they are. */
export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** Overlays b on a: nested plain objects merge, everything else (arrays too) replaces; undefined leaves a as it is. */
export function mergeConfig<T>(a: T, b: unknown): T {
  if (!isPlainObject(a) || !isPlainObject(b)) return (b === undefined ? a : b) as T;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) if (v !== undefined) out[k] = k in out ? mergeConfig(out[k], v) : v;
  return out as T;
}
