// The one door to the native addon. Every other module reaches libtorch
// through the typed `native` object exported here.
import * as path from 'node:path';

/** A tensor as the addon sees it: a slot id in its handle table. */
export type Handle = number;

export interface OpArgumentInfo {
  name: string;
  type: string;
  size?: number;
  default?: string;
  kwargOnly: boolean;
  mutable: boolean;
  alias: boolean;
}

export interface OpInfo {
  name: string;
  overload: string;
  schema: string;
  arguments: OpArgumentInfo[];
  returns: OpArgumentInfo[];
}

export interface StatInfo {
  current: number;
  peak: number;
  allocated: number;
  freed: number;
}

export interface DeviceMemoryStats {
  allocatedBytes: StatInfo;
  reservedBytes: StatInfo;
  activeBytes: StatInfo;
  numAllocRetries: number;
  numOoms: number;
}

export interface NativeBinding {
  // handle table
  release(id: Handle): void;
  releaseMany(ids: Float64Array | Handle[]): void;
  isLive(id: Handle): boolean;
  liveTensors(): number;
  liveBytes(): number;
  v8ExternalMemory(): number;
  // dispatcher
  lookupOp(name: string, overload: string): number;
  call(op: number, ...args: unknown[]): unknown;
  listOps(): OpInfo[];
  opSchema(op: number): string;
  opIsFast(op: number): boolean;
  // data and metadata
  fromBuffer(data: ArrayBufferView, shape: number[], dtypeCode: number): Handle;
  toBuffer(id: Handle): ArrayBuffer;
  toBufferAsync(id: Handle): Promise<ArrayBuffer>;
  item(id: Handle): number | boolean;
  shape(id: Handle): number[];
  strides(id: Handle): number[];
  scalarType(id: Handle): number;
  device(id: Handle): string;
  flags(id: Handle): number;
  sameStorage(a: Handle, b: Handle): boolean;
  share(id: Handle): Handle;
  /** The in-place modification counter; -1 for an inference tensor. */
  version(id: Handle): number;
  // autograd
  backward(outputs: Handle[], grads: (Handle | null)[] | null, retainGraph: boolean | undefined,
    createGraph: boolean, inputs: Handle[] | null): void;
  grad(outputs: Handle[], inputs: Handle[], gradOutputs: (Handle | null)[] | null,
    retainGraph: boolean | undefined, createGraph: boolean, allowUnused: boolean): (Handle | null)[];
  getGrad(id: Handle): Handle | null;
  setGrad(id: Handle, grad: Handle | null): void;
  setRequiresGrad(id: Handle, flag: boolean): void;
  gradFnName(id: Handle): string | null;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  inferenceModeEnter(): number;
  inferenceModeExit(depth: number): void;
  // runtime
  manualSeed(seed: number): void;
  newGenerator(device: string, seed: number): number;
  defaultGenerator(device: string): number;
  generatorSeed(id: number, seed: number): void;
  generatorInitialSeed(id: number): number;
  generatorGetState(id: number): Handle;
  generatorSetState(id: number, state: Handle): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setNumInteropThreads(n: number): void;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  synchronize(device: string): void;
  memoryStats(device: string): DeviceMemoryStats;
  emptyCache(device: string): void;
  resetPeakMemoryStats(device: string): void;
  autocastEnter(device: string, dtypeCode: number, enabled: boolean): [boolean, number];
  autocastExit(device: string, prevEnabled: boolean, prevDtypeCode: number): void;
  autocastState(device: string): [boolean, number];
  versions(): { torch: string; parallel: string; config: string };
  // device graphs (native/graphs.cc)
  graphSupported(device: string): boolean;
  graphCreate(device: string): number;
  graphEnterStream(id: number): void;
  graphLeaveStream(id: number): void;
  graphCaptureBegin(id: number): void;
  graphCaptureEnd(id: number): void;
  graphReplay(id: number): void;
  graphDispose(id: number): void;
  // operator traces (native/trace.cc)
  traceBegin(inputs: Handle[]): void;
  traceEnd(outputs: Handle[]): number;
  traceAbort(): void;
  traceRun(id: number, inputs: Handle[]): Handle[];
  traceInfo(id: number): { steps: number; inputs: number; outputs: number; slots: number; constants: number; constantBytes: number };
  traceDispose(id: number): void;
  // torch.distributed (native/distributed.cc); the dist* calls exist only where distAvailable().gloo
  distAvailable(): { gloo: boolean; nccl: boolean };
  distInit(options: { host: string; port: number; rank: number; size: number; isServer: boolean; timeoutMs: number; prefix: string; nccl: boolean }): Promise<number>;
  distAllReduce(group: number, tensors: Handle[], op: string): Promise<void>;
  distBroadcast(group: number, tensors: Handle[], root: number): Promise<void>;
  distAllGather(group: number, outputs: Handle[], input: Handle): Promise<void>;
  distReduceScatter(group: number, output: Handle, inputs: Handle[], op: string): Promise<void>;
  distBarrier(group: number): Promise<void>;
  distStoreSet(group: number, key: string, value: Uint8Array): void;
  distStoreGet(group: number, key: string): Uint8Array;
  distStoreCheck(group: number, key: string): boolean;
  distDestroy(group: number): void;
  distReducerCreate(group: number, params: Handle[], bucketBytes: number, firstBucketBytes: number): { id: number; buckets: number };
  distReducerPrepare(id: number): void;
  distReducerDispose(id: number): void;
}

function load(): NativeBinding {
  // dist/lib/native.js -> package root
  const root = path.resolve(__dirname, '..', '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const gypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
    return gypBuild(root);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new Error(`Could not load the extrema native addon (run "npm install" to build it): ${reason}`);
  }
}

export const native: NativeBinding = load();
