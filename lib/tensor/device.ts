// Device names as libtorch spells them.

export type Device = 'cpu' | 'cuda' | `cuda:${number}` | (string & { readonly __device?: never });

const DEVICE_PATTERN = /^(cpu|cuda|mps|xpu|meta)(:\d+)?$/;

export function assertDevice(value: unknown, what = 'device'): string {
  if (typeof value !== 'string' || !DEVICE_PATTERN.test(value)) {
    throw new TypeError(`Expected a device such as "cpu", "cuda" or "cuda:1" for ${what} but received ${JSON.stringify(value)}`);
  }
  return value;
}

export function deviceType(device: string): string {
  const i = device.indexOf(':');
  return i < 0 ? device : device.slice(0, i);
}
