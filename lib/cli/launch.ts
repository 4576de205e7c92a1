// `extrema launch --nproc-per-node N [--nnodes --node-rank --master-addr
// --master-port] -- pretrain ...`: runs an extrema command as N local ranks
// of a data-parallel run (lib/distributed/launch.ts).
import * as path from 'node:path';
import type { Command } from 'commander';
import { launch } from '../distributed/launch';
import { addSchemaOptions, inputFromFlags, parseConfig, int, text, record, type FlagSpec } from '../config';

export const launchCommandSchema = record({
  nprocPerNode: int(1, 1024).describe('ranks on this machine'),
  nnodes: int(1, 65_536).default(1).describe('machines in the run'),
  nodeRank: int(0, 65_535).default(0).describe("this machine's index"),
  masterAddr: text('a host').default('127.0.0.1').describe("host of rank 0's rendezvous store"),
  masterPort: int(1, 65_535).default(29500).describe('its port'),
});

const LAUNCH_FLAGS: readonly FlagSpec[] = [
  { flags: '--nproc-per-node <n>', path: 'nprocPerNode' },
  { flags: '--nnodes <n>', path: 'nnodes' },
  { flags: '--node-rank <n>', path: 'nodeRank' },
  { flags: '--master-addr <host>', path: 'masterAddr' },
  { flags: '--master-port <port>', path: 'masterPort' },
];

export function addLaunchCommand(program: Command): void {
  const cmd = program.command('launch')
    .description('run an extrema command (after --) as the local ranks of a data-parallel run, setting RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun does; a failing rank stops the others and the exit code is non-zero')
    .argument('<command...>', 'the extrema command and its flags, e.g. -- pretrain --preset demo')
    .passThroughOptions();
  addSchemaOptions(cmd, launchCommandSchema, LAUNCH_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (args: string[], flags: Record<string, unknown>) => {
    const o = parseConfig(launchCommandSchema, inputFromFlags(flags, launchCommandSchema, LAUNCH_FLAGS), { what: 'launch option' });
    if (o.nodeRank >= o.nnodes) throw new RangeError(`Expected --node-rank below --nnodes (${o.nnodes}) but received ${o.nodeRank}`);
    const main = path.join(__dirname, 'main.js');
    const r = await launch({ ...o, command: [process.execPath, main, ...args] });
    process.exitCode = r.exitCode;
  });
}
