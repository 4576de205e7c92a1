// Runs a synchronous function with one environment variable set (undefined:
// unset) and restores it afterwards, thrown or not: for the switches
// libraries read at each call (EXTREMA_INFERENCE_KERNELS, EXTREMA_PACKED_LINEAR).
export function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const saved = process.env[name];
  try {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
    return fn();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}
