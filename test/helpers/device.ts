// The device the oracle tests run on, chosen by EXTREMA_TEST_DEVICE so one
// GPU machine can rerun the same comparisons on CUDA. Inputs are still drawn
// on the CPU from seeded generators, so both sides see the same numbers.
import * as et from '../../lib';

const DEVICE_PATTERN = /^(cpu|cuda(:\d+)?)$/;

function testDevice(): string {
  const raw = process.env.EXTREMA_TEST_DEVICE;
  if (raw === undefined || raw === '') return 'cpu';
  if (!DEVICE_PATTERN.test(raw)) {
    throw new Error(`EXTREMA_TEST_DEVICE must be "cpu", "cuda" or "cuda:N" (e.g. "cuda:1") but is ${JSON.stringify(raw)}`);
  }
  return raw;
}

export const TEST_DEVICE: string = testDevice();

/** Why the device tests cannot run here, or false when they can: for node:test's `skip`. */
export const skipUnlessDeviceAvailable: string | false = deviceUnavailable();

function deviceUnavailable(): string | false {
  if (TEST_DEVICE === 'cpu') return false;
  if (!et.cuda.isAvailable()) return `EXTREMA_TEST_DEVICE=${TEST_DEVICE} but no CUDA device`;
  const index = TEST_DEVICE.includes(':') ? Number(TEST_DEVICE.slice(TEST_DEVICE.indexOf(':') + 1)) : 0;
  const count = et.cuda.deviceCount();
  if (index >= count) return `EXTREMA_TEST_DEVICE=${TEST_DEVICE} but only ${count} CUDA device(s)`;
  return false;
}

/** A test title naming the device when it is not the CPU, so CUDA results are told apart in reports. */
export function onTestDevice(title: string): string {
  return TEST_DEVICE === 'cpu' ? title : `${title} (${TEST_DEVICE})`;
}
