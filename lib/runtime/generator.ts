// Random number generators: the default one per device, or private ones a
// caller seeds and passes to random ops (and checkpoints with getState()).
import { native } from '../native';
import { assertDevice, type Device } from '../tensor/device';
import { Tensor } from '../tensor/tensor';
import { scope } from '../tensor/scope';

/** One rank's rows of a global batch: rank, rank + size, rank + 2 size, ... */
export interface RowShard {
  rank: number;
  size: number;
}

export class Generator {
  /** @internal */
  readonly id: number;
  readonly device: string;
  /**
   * Global draws in a data-parallel run: per-image draws made through
   * drawRows() are drawn for `size` times this rank's rows and the rank keeps
   * its own (rank, rank + size, ...), the ones a single process at the
   * global batch would give its items. null: draw for the rows given.
   */
  rowShard: RowShard | null = null;

  private constructor(id: number, device: string) {
    this.id = id;
    this.device = device;
  }

  /** A new generator on `device` seeded with `seed`. */
  static create(seed: number, device: Device = 'cpu'): Generator {
    assertSeed(seed);
    const d = assertDevice(device);
    return new Generator(native.newGenerator(d, seed), d);
  }

  /** The generator random ops use when none is passed. */
  static default(device: Device = 'cpu'): Generator {
    const d = assertDevice(device);
    return new Generator(native.defaultGenerator(d), d);
  }

  manualSeed(seed: number): this {
    assertSeed(seed);
    native.generatorSeed(this.id, seed);
    return this;
  }

  initialSeed(): number {
    return native.generatorInitialSeed(this.id);
  }

  /** The full state as a uint8 tensor, for checkpoints. */
  getState(): Tensor {
    return Tensor._wrap(native.generatorGetState(this.id));
  }

  setState(state: Tensor): this {
    if (!(state instanceof Tensor)) throw new TypeError('Expected a uint8 Tensor for "state"');
    native.generatorSetState(this.id, state.id);
    return this;
  }
}

/**
 * A per-row random draw of `shape` (rows first) through `draw`; with the
 * generator's rowShard set, drawn for the global batch and cut to this
 * rank's rows, so every rank's generator advances exactly as a single
 * process's would.
 */
export function drawRows(shape: readonly number[], generator: Generator | undefined, draw: (shape: number[]) => Tensor): Tensor {
  const shard = generator?.rowShard ?? null;
  if (shard === null || shard.size === 1) return draw([...shape]);
  const [rows, ...rest] = shape;
  return scope(() => draw([rows! * shard.size, ...rest]).view([rows!, shard.size, ...rest]).select(1, shard.rank).contiguous());
}

function assertSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`Expected a non-negative integer seed but received ${seed}`);
}

/** Seeds every device's default generator, like torch.manual_seed. */
export function manualSeed(seed: number): void {
  assertSeed(seed);
  native.manualSeed(seed);
}
