// Runs fn with one environment variable set (undefined: unset) and restores
// it afterwards, thrown or not; when fn returns a promise, once it settles.
// For the switches the library reads as it runs (EXTREMA_INFERENCE_KERNELS,
// EXTREMA_PACKED_LINEAR), in tests and benches.
export function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const saved = process.env[name];
  const restore = () => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  };
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}
