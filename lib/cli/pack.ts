// `extrema pack <images> --out <dir> --size 256`: decode and resize a dataset
// once into uint8 shards (lib/data/shards.ts) that every later command reads
// as a dataset, without decoding.
import * as path from 'node:path';
import type { Command } from 'commander';
import { openDataset } from '../data/dataset';
import { packDataset } from '../data/shards';
import { addSchemaOptions, inputFromFlags, parseConfig, int, text, flag, record, type FlagSpec } from '../config';
import { ProgressBar } from './progress';

export const packCommandSchema = record({
  out: text('a folder').describe('folder for the pack (index.json, shard-*.u8, labels.i32); must not hold a pack'),
  size: int(1, 4096).default(256).describe('side of the stored images: shorter side resized to it, centre crop'),
  channels: int(1, 3).refine((c) => c !== 2, { error: '1 or 3' }).optional().describe('1 or 3 (default: 1 for IDX, 3 for image files)'),
  shardMb: int(1, 65_536).default(256).describe('MiB per shard file'),
  workers: int(1, 256).default(16).describe('images decoded at once'),
  skipBad: flag().optional().describe('report and leave out images that fail to decode (default: stop at the first)'),
  quiet: flag().optional().describe('no progress bar'),
});

const PACK_FLAGS: readonly FlagSpec[] = [
  { flags: '--out <dir>', path: 'out' },
  { flags: '--size <n>', path: 'size' },
  { flags: '--channels <n>', path: 'channels' },
  { flags: '--shard-mb <n>', path: 'shardMb' },
  { flags: '--workers <n>', path: 'workers' },
  { flags: '--skip-bad', path: 'skipBad' },
  { flags: '--quiet', path: 'quiet' },
];

export function addPackCommand(program: Command): void {
  const cmd = program.command('pack')
    .description('decode and resize images once into packed uint8 shards (with labels and an index) that training and evaluation read without decoding')
    .argument('<images>', 'an image folder (class sub-folders give labels), an IDX file (labels beside it), or an image file');
  addSchemaOptions(cmd, packCommandSchema, PACK_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (images: string, flags: Record<string, unknown>) => {
    const o = parseConfig(packCommandSchema, inputFromFlags(flags, packCommandSchema, PACK_FLAGS), { what: 'pack option' });
    const data = openDataset(images, { size: o.size, channels: o.channels as 1 | 3 | undefined });
    process.stderr.write(`packing ${data.describe}\n`);
    const bar = o.quiet ? null : new ProgressBar({ total: data.count, label: `pack ${path.basename(images)}`, unit: 'img' });
    let shown = 0;
    const started = performance.now();
    const index = await packDataset(data, o.out, {
      shardBytes: o.shardMb * 2 ** 20, workers: o.workers, strict: !o.skipBad,
      onSkip: (name, e) => process.stderr.write(`${bar ? '\n' : ''}skipped ${name}: ${e.message}\n`),
      onProgress: bar === null ? undefined : (done) => {
        bar.tick(done - shown);
        shown = done;
      },
    });
    bar?.finish();
    const seconds = (performance.now() - started) / 1000;
    const skipped = index.skipped.length > 0 ? `, ${index.skipped.length} skipped` : '';
    process.stderr.write(`wrote ${index.count} images (${index.size} x ${index.size} x ${index.channels}) in ${index.shards.length} shard${index.shards.length === 1 ? '' : 's'} to ${o.out} in ${seconds.toFixed(1)} s (${(index.count / seconds).toFixed(0)} images/s${skipped})\n`);
  });
}
