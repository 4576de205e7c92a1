// Devices, threads, memory statistics and autocast.
import { native, type DeviceMemoryStats } from '../native';
import { assertDevice, deviceType, type Device } from '../tensor/device';
import { assertDType, dtypeCode, type DType } from '../tensor/dtype';

export const cuda = {
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  /** Waits for all work queued on the device. */
  synchronize(device: Device = 'cuda'): void {
    native.synchronize(assertDevice(device));
  },
  /** Caching allocator statistics (bytes) of one CUDA device. */
  memoryStats(device: Device = 'cuda'): DeviceMemoryStats {
    return native.memoryStats(assertDevice(device));
  },
  resetPeakMemoryStats(device: Device = 'cuda'): void {
    native.resetPeakMemoryStats(assertDevice(device));
  },
  emptyCache(device: Device = 'cuda'): void {
    native.emptyCache(assertDevice(device));
  },
};

/** Waits for queued work on any device (a no-op on CPU). */
export function synchronize(device: Device): void {
  native.synchronize(assertDevice(device));
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`Expected a positive integer for "threads" but received ${n}`);
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Must be called before any parallel work starts. */
export function setNumInteropThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`Expected a positive integer for "threads" but received ${n}`);
  native.setNumInteropThreads(n);
}

/** Live tensors and the bytes of their distinct storages, for leak checks. */
export function memory(): { liveTensors: number; liveBytes: number } {
  return { liveTensors: native.liveTensors(), liveBytes: native.liveBytes() };
}

export function versions(): { torch: string; parallel: string; config: string } {
  return native.versions();
}

/**
 * Runs fn with autocast on for a device type: eligible ops (matmul, linear,
 * conv, ...) compute in `dtype`, precision-sensitive ones in float32, exactly as
 * torch.autocast does. fn must be synchronous.
 */
export function autocast<T>(device: Device, dtype: DType, fn: () => T, enabled = true): T {
  const type = deviceType(assertDevice(device));
  const code = dtypeCode(assertDType(dtype, '"dtype"'));
  if (dtype !== 'float16' && dtype !== 'bfloat16') {
    throw new TypeError(`Expected float16 or bfloat16 for the autocast dtype but received ${dtype}`);
  }
  const [prevEnabled, prevDtype] = native.autocastEnter(type, code, enabled);
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('autocast() takes a synchronous function');
    return result;
  } finally {
    native.autocastExit(type, prevEnabled, prevDtype);
  }
}

export function isAutocastEnabled(device: Device): boolean {
  return native.autocastState(deviceType(assertDevice(device)))[0];
}
