// A group of processes training together over torch.distributed: Gloo for
// CPU tensors, and NCCL for CUDA tensors where the addon was built with it
// and a GPU is present (torch's "cpu:gloo,cuda:nccl"). Each collective
// returns a Promise. Gloo's work runs on Gloo's threads while the event loop
// stays free; until its Promise settles, its tensors belong to it: do not
// read, write or dispose them in between (the native side keeps the storage
// alive regardless). NCCL's work is queued on NCCL's stream and the
// Promise settles at once: the current stream waits for it, so whatever is
// queued next on the device sees the result (torch's work.wait()).
import { native } from '../native';
import { cuda } from './device-runtime';
import type { Tensor } from '../tensor/tensor';
import { isTensor } from '../tensor/tensor';
import { emptyLike } from '../tensor/creation';
import { intInRange, oneOf } from '../checks';
import { worldFromEnv, type WorldOptions } from './world-env';

export const REDUCE_OPS = ['sum', 'avg', 'max', 'min', 'product'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

export interface InitOptions extends Partial<WorldOptions> {
  /**
   * How long connecting, and then any one collective, may wait for the other
   * ranks before failing with an error (default 30 minutes, as torch).
   */
  timeoutMs?: number;
  /** Store keys of this group start with it, apart from others on the same store (default 'extrema/'). */
  prefix?: string;
  /**
   * 'auto' (default): Gloo, plus NCCL for CUDA tensors where this build has
   * NCCL and this machine a GPU; 'nccl': the same, an error where NCCL cannot
   * be had; 'gloo': Gloo alone (CUDA tensors are refused).
   */
  backend?: Backend;
}

export const BACKENDS = ['auto', 'gloo', 'nccl'] as const;
export type Backend = (typeof BACKENDS)[number];

/** Whether this build of the addon has torch.distributed's backends. */
export function available(): { gloo: boolean; nccl: boolean } {
  return native.distAvailable();
}

/** Whether a group initialised with `backend` gets NCCL; throws where 'nccl' cannot be had. */
function wantsNccl(backend: Backend): boolean {
  const built = available().nccl;
  if (backend === 'nccl') {
    if (!built) throw new Error('Expected an addon built with NCCL for backend "nccl", but this one has Gloo alone: build against a CUDA libtorch with the CUDA and NCCL headers at hand (README: Installing with CUDA), or use backend "gloo"');
    if (!cuda.isAvailable()) throw new Error('Expected a CUDA device for backend "nccl", but this machine has none; use backend "gloo" (CPU tensors)');
    return true;
  }
  return backend === 'auto' && built && cuda.isAvailable();
}

export class ProcessGroup {
  private id: number | null;

  private constructor(
    id: number,
    readonly rank: number,
    readonly size: number,
    readonly localRank: number,
    /** Whether CUDA tensors can be reduced: the group has an NCCL backend beside Gloo. */
    readonly nccl: boolean,
  ) {
    this.id = id;
  }

  private checkTensor(t: unknown, what: string): Tensor {
    if (!isTensor(t)) throw new TypeError(`Expected a Tensor for ${what} but received ${t === null ? 'null' : typeof t}`);
    if (t.isDisposed) throw new Error(`The tensor given as ${what} has been disposed`);
    const device = t.device;
    if (device.startsWith('cuda')) {
      if (!this.nccl) throw new Error(`Expected a CPU tensor for ${what} but received one on ${device}: this group has Gloo alone (${available().nccl ? 'initialise it with backend "nccl" or "auto" on a machine with a GPU' : 'this addon was built without NCCL'})`);
    } else if (device !== 'cpu') {
      throw new Error(`Expected a CPU${this.nccl ? ' or CUDA' : ''} tensor for ${what} but received one on ${device}`);
    }
    if (!t.isContiguous) throw new Error(`Expected a contiguous tensor for ${what} (call .contiguous() first) but received one with strides [${t.strides.join(', ')}]`);
    return t;
  }

  private sameDevice(t: Tensor, like: Tensor, what: string): void {
    if (t.device !== like.device) throw new Error(`Expected ${what} on ${like.device} like the others but received one on ${t.device}`);
  }

  /**
   * Joins the group: options override what the environment says (see
   * worldFromEnv); without WORLD_SIZE in either, it is an error. Resolves once
   * every rank has connected, or rejects after timeoutMs.
   */
  static async init(options: InitOptions = {}): Promise<ProcessGroup> {
    if (!available().gloo) throw new Error('This build of the extrema addon has no torch.distributed (its libtorch lacks the c10d Gloo headers); rebuild against a libtorch with distributed support');
    const fromEnv = worldFromEnv();
    const worldSize = options.worldSize ?? fromEnv?.worldSize;
    if (worldSize === undefined) throw new Error('Expected a world size: set WORLD_SIZE, RANK, MASTER_PORT (and MASTER_ADDR) as torchrun does, or pass { worldSize, rank, masterPort }');
    intInRange(worldSize, '"worldSize"', 1);
    const rank = intInRange(options.rank ?? fromEnv?.rank, '"rank"', 0, worldSize - 1);
    const localRank = intInRange(options.localRank ?? fromEnv?.localRank ?? rank, '"localRank"', 0);
    const masterPort = intInRange(options.masterPort ?? fromEnv?.masterPort, '"masterPort"', 1, 65535);
    const masterAddr = options.masterAddr ?? fromEnv?.masterAddr ?? '127.0.0.1';
    const agentStore = options.agentStore ?? fromEnv?.agentStore ?? false;
    const timeoutMs = intInRange(options.timeoutMs ?? 30 * 60_000, '"timeoutMs"', 1);
    const prefix = options.prefix ?? 'extrema/';
    const nccl = wantsNccl(oneOf(options.backend ?? 'auto', '"backend"', BACKENDS));
    if (typeof masterAddr !== 'string' || masterAddr === '') throw new TypeError(`Expected a host name for "masterAddr" but received ${JSON.stringify(masterAddr)}`);
    let id: number;
    try {
      id = await native.distInit({ host: masterAddr, port: masterPort, rank, size: worldSize, isServer: rank === 0 && !agentStore, timeoutMs, prefix, nccl });
    } catch (e) {
      throw new Error(`Rank ${rank} of ${worldSize} could not join the group at ${masterAddr}:${masterPort}: ${(e as Error).message}`, { cause: e });
    }
    return new ProcessGroup(id, rank, worldSize, localRank, nccl);
  }

  /**
   * Runs a collective; a failure says which one, on which rank, and what
   * usually causes it, whether the native call throws (NCCL reports some
   * failures as it queues the work) or its Promise rejects.
   */
  private async run(what: string, start: (group: number) => Promise<void>): Promise<void> {
    const group = this.handle;
    try {
      await start(group);
    } catch (e) {
      const m = (e as Error).message;
      const hint = /closed|reset|broken pipe|timed out|timeout/i.test(m) ? ' (another rank has probably died or stalled; its own output says why)' : '';
      throw new Error(`${what} failed on rank ${this.rank} of ${this.size}${hint}: ${m}`, { cause: e });
    }
  }

  private get handle(): number {
    if (this.id === null) throw new Error('This process group has been destroyed');
    return this.id;
  }

  /** @internal The native group id (for lib/runtime's GradientReducer). */
  get _handle(): number {
    return this.handle;
  }

  /** Reduces `t` over all ranks, in place on every rank ('avg': the sum divided by size, floating tensors only). */
  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    this.checkTensor(t, 'the all-reduce tensor');
    oneOf(op, '"op" of allReduce', REDUCE_OPS);
    if (op === 'avg' && !['float32', 'float64', 'float16', 'bfloat16'].includes(t.dtype)) throw new TypeError(`Expected a floating tensor to average but received ${t.dtype}; use 'sum'`);
    await this.run('all-reduce', (g) => native.distAllReduce(g, [t.id], op === 'avg' ? 'sum' : op));
    if (op === 'avg') t.div_(this.size);
  }

  /** Every rank's `t` becomes root's. */
  async broadcast(t: Tensor, root = 0): Promise<void> {
    this.checkTensor(t, 'the broadcast tensor');
    intInRange(root, '"root" of broadcast', 0, this.size - 1);
    await this.run('broadcast', (g) => native.distBroadcast(g, [t.id], root));
  }

  /** Every rank's `t`, in rank order, as new tensors (the caller disposes them). */
  async allGather(t: Tensor): Promise<Tensor[]> {
    this.checkTensor(t, 'the all-gather tensor');
    const outputs = Array.from({ length: this.size }, () => emptyLike(t));
    try {
      await this.run('all-gather', (g) => native.distAllGather(g, outputs.map((o) => o.id), t.id));
    } catch (e) {
      for (const o of outputs) o.dispose();
      throw e;
    }
    return outputs;
  }

  /** output <- op over ranks of inputs[rank]; inputs has one tensor per rank, each shaped like output. */
  async reduceScatter(output: Tensor, inputs: Tensor[], op: Exclude<ReduceOp, 'avg'> = 'sum'): Promise<void> {
    this.checkTensor(output, 'the reduce-scatter output');
    if (!Array.isArray(inputs) || inputs.length !== this.size) throw new RangeError(`Expected ${this.size} input tensors (one per rank) for reduceScatter but received ${Array.isArray(inputs) ? inputs.length : typeof inputs}`);
    inputs.forEach((t, i) => {
      this.checkTensor(t, `reduce-scatter input ${i}`);
      this.sameDevice(t, output, `reduce-scatter input ${i}`);
      if (t.dtype !== output.dtype || t.shape.join() !== output.shape.join()) throw new RangeError(`Expected reduce-scatter input ${i} to be ${output.dtype} [${output.shape.join(', ')}] like the output but received ${t.dtype} [${t.shape.join(', ')}]`);
    });
    oneOf(op, '"op" of reduceScatter', ['sum', 'max', 'min', 'product'] as const);
    await this.run('reduce-scatter', (g) => native.distReduceScatter(g, output.id, inputs.map((t) => t.id), op));
  }

  /** Resolves once every rank has reached it. */
  async barrier(): Promise<void> {
    await this.run('barrier', (g) => native.distBarrier(g));
  }

  /** A small value for every rank to read (a failing rank's reason). */
  setKey(key: string, value: string): void {
    native.distStoreSet(this.handle, key, new TextEncoder().encode(value));
  }

  /** A key's value if some rank set it, else null; never waits. */
  tryKey(key: string): string | null {
    const h = this.handle;
    return native.distStoreCheck(h, key) ? new TextDecoder().decode(native.distStoreGet(h, key)) : null;
  }

  /** Leaves the group; collectives still in flight finish or fail on their own. */
  destroy(): void {
    if (this.id === null) return;
    native.distDestroy(this.id);
    this.id = null;
  }
}

