// Starts the local ranks of a data-parallel run, as torchrun does: one child
// process per rank, each with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT set. Rank 0's output passes through; the others' lines are
// prefixed with their rank. When a rank fails, the launcher names it, stops
// the other local ranks and resolves with a non-zero exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import { intInRange } from '../checks';

export interface LaunchOptions {
  /** Processes on this machine. */
  nprocPerNode: number;
  /** Machines (default 1). */
  nnodes?: number;
  /** This machine's index in [0, nnodes) (default 0). */
  nodeRank?: number;
  /** Host of rank 0's rendezvous store (default 127.0.0.1). */
  masterAddr?: string;
  /** Its port (default 29500, torchrun's). */
  masterPort?: number;
  /** The program and arguments every rank runs. */
  command: string[];
  /** Extra environment for every rank. */
  env?: Record<string, string>;
  /** Where lines of the ranks go (default: process.stdout / process.stderr). */
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** How long the others get after a failure before SIGKILL (default 10 s). */
  graceMs?: number;
}

export interface RankFailure {
  rank: number;
  code: number | null;
  signal: string | null;
}

export interface LaunchResult {
  /** 0 when every local rank exited with 0. */
  exitCode: number;
  /**
   * The local ranks that failed, in the order they ended (the first is
   * usually the cause: when one rank dies, the others' collectives fail next;
   * ranks the launcher stopped itself are not listed).
   */
  failures: RankFailure[];
}

/** Splits a stream into lines and writes each with a prefix. */
function prefixed(write: (text: string) => void, prefix: string): { push(chunk: Buffer): void; flush(): void } {
  let rest = '';
  return {
    push(chunk) {
      const lines = (rest + chunk.toString()).split(/(?<=\n)/);
      rest = lines.at(-1)!.endsWith('\n') ? '' : lines.pop()!;
      for (const line of lines) write(prefix + line);
    },
    flush() {
      if (rest !== '') write(`${prefix}${rest}\n`);
      rest = '';
    },
  };
}

export async function launch(o: LaunchOptions): Promise<LaunchResult> {
  const nproc = intInRange(o.nprocPerNode, '"nprocPerNode"', 1, 1024);
  const nnodes = intInRange(o.nnodes ?? 1, '"nnodes"', 1, 1 << 16);
  const nodeRank = intInRange(o.nodeRank ?? 0, '"nodeRank"', 0, nnodes - 1);
  const masterPort = intInRange(o.masterPort ?? 29500, '"masterPort"', 1, 65535);
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  if (!Array.isArray(o.command) || o.command.length === 0) throw new TypeError('Expected a command to launch (the program and its arguments) but received none');
  const out = o.stdout ?? ((t: string) => process.stdout.write(t));
  const err = o.stderr ?? ((t: string) => process.stderr.write(t));
  const worldSize = nproc * nnodes;
  const children: ChildProcess[] = [];
  const failures: RankFailure[] = [];
  let stopping = false;
  let killTimer: NodeJS.Timeout | null = null;
  const stopOthers = () => {
    stopping = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, o.graceMs ?? 10_000);
  };
  const exits = Array.from({ length: nproc }, (_, local) => new Promise<void>((resolve) => {
    const rank = nodeRank * nproc + local;
    const child = spawn(o.command[0]!, o.command.slice(1), {
      env: {
        ...process.env, ...o.env,
        RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(worldSize), LOCAL_WORLD_SIZE: String(nproc),
        GROUP_RANK: String(nodeRank), MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const prefix = rank === 0 ? '' : `[rank ${rank}] `;
    const so = prefixed(out, prefix);
    const se = prefixed(err, prefix);
    child.stdout!.on('data', (d: Buffer) => so.push(d));
    child.stderr!.on('data', (d: Buffer) => se.push(d));
    const done = (code: number | null, signal: string | null) => {
      so.flush();
      se.flush();
      const stoppedByUs = stopping && (signal === 'SIGTERM' || signal === 'SIGKILL') && failures.length > 0;
      if ((code !== 0 || signal !== null) && !stoppedByUs) {
        failures.push({ rank, code, signal });
        err(`extrema launch: rank ${rank} (pid ${child.pid ?? '?'}) ${signal !== null ? `was killed by ${signal}` : `exited with code ${code}`}${stopping ? '' : '; stopping the other ranks'}\n`);
        if (!stopping) stopOthers();
      }
      resolve();
    };
    child.once('error', (e) => {
      err(`extrema launch: could not start rank ${rank}: ${e.message}\n`);
      done(127, null);
    });
    child.once('close', done);
  }));
  // A launcher told to stop (a scheduler's SIGTERM, Ctrl-C) passes it on and waits for the ranks.
  const forward = (signal: NodeJS.Signals) => {
    stopping = true;
    const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
    err(`extrema launch: ${signal} received; passing it to the ranks still running (pids ${running.map((c) => c.pid).join(', ')})\n`);
    for (const c of running) c.kill(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  for (const sig of signals) process.on(sig, forward);
  try {
    await Promise.all(exits);
  } finally {
    for (const sig of signals) process.off(sig, forward);
  }
  if (killTimer !== null) clearTimeout(killTimer);
  const first = failures[0];
  return { exitCode: first === undefined ? 0 : first.code !== null && first.code !== 0 ? first.code : 1, failures };
}
