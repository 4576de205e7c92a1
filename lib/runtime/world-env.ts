// Where this process sits in a data-parallel run, read the way torchrun,
// SLURM scripts and Kubernetes operators hand it over: RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Pure: the environment is an argument.

export interface WorldOptions {
  /** This process's rank in [0, worldSize). */
  rank: number;
  /** Number of processes. */
  worldSize: number;
  /** Rank on this machine (picks the GPU with --device cuda). */
  localRank: number;
  /** Host of the rendezvous store (rank 0's machine). */
  masterAddr: string;
  /** Port of the rendezvous store. */
  masterPort: number;
  /**
   * Someone else (torchrun's agent, TORCHELASTIC_USE_AGENT_STORE=True) already
   * serves the store at masterAddr:masterPort; otherwise rank 0 serves it.
   */
  agentStore: boolean;
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, min: number, max: number): number {
  const raw = env[name];
  const v = raw !== undefined && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new RangeError(`Expected an integer in [${min}, ${max}] for the environment variable ${name} but received ${raw === undefined ? 'nothing (unset)' : JSON.stringify(raw)}`);
  }
  return v;
}

/**
 * The run's layout from environment variables, or null when WORLD_SIZE is
 * unset (a plain single-process run). A set WORLD_SIZE makes every other
 * variable required except LOCAL_RANK (default: RANK) and MASTER_ADDR
 * (default 127.0.0.1).
 */
export function worldFromEnv(env: Env = process.env): WorldOptions | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 1 << 20);
  const rank = intVar(env, 'RANK', 0, worldSize - 1);
  const localRank = env.LOCAL_RANK === undefined ? rank : intVar(env, 'LOCAL_RANK', 0, worldSize - 1);
  const masterAddr = env.MASTER_ADDR === undefined || env.MASTER_ADDR === '' ? '127.0.0.1' : env.MASTER_ADDR;
  const masterPort = intVar(env, 'MASTER_PORT', 1, 65535);
  return { rank, worldSize, localRank, masterAddr, masterPort, agentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True' };
}

/**
 * The device a rank trains on: a bare "cuda" means the rank's own GPU,
 * cuda:LOCAL_RANK (what torchrun scripts get from set_device(local_rank));
 * an explicit one ("cuda:0", "cpu") stays as given.
 */
export function rankDevice(device: string, localRank: number): string {
  return device === 'cuda' ? `cuda:${localRank}` : device;
}
