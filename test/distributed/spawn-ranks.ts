// Starts `size` ranks of rank-worker.js on this machine with torchrun's
// environment and a free port, and collects each one's exit and output.
import { spawn } from 'node:child_process';
import { freePort } from '../helpers/net';
import * as path from 'node:path';

export interface RankExit {
  rank: number;
  code: number | null;
  stdout: string;
  stderr: string;
  result: Record<string, unknown> | null;
}




export async function spawnRanks(scenario: string, size: number, env: Record<string, string> = {}): Promise<RankExit[]> {
  const port = await freePort();
  const worker = path.join(__dirname, 'rank-worker.js');
  return Promise.all(Array.from({ length: size }, (_, rank) => new Promise<RankExit>((resolve) => {
    const child = spawn(process.execPath, [worker, scenario], {
      env: { ...process.env, ...env, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(size), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      let result: Record<string, unknown> | null = null;
      try {
        result = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : null;
      } catch {
        result = null;
      }
      resolve({ rank, code, stdout, stderr, result });
    });
  })));
}
