// `extrema embed`: the options schema, its flags, and a progress bar around
// the library workflow embedToFile (lib/eval/embed.ts).
import * as path from 'node:path';
import { z } from 'zod';
import type { Command } from 'commander';
import { embedToFile } from '../eval/embed';
import { addSchemaOptions, inputFromFlags, parseConfig, int, num, text, flag, record, type FlagSpec } from '../config';
import { ProgressBar } from './progress';

/** Per-channel statistics: one value for a gray model, three for RGB. */
const stats = (what: string) => z.array(num(-1e6, 1e6), { error: `a list of ${what} values` }).min(1, { error: `1 or 3 ${what} values` }).max(3, { error: `1 or 3 ${what} values` });

export const embedCommandSchema = record({
  checkpoint: text('a file path').describe("an ExtreMA checkpoint: this project's .safetensors or the authors' .pth"),
  images: text('a path').describe('an IDX file (.gz or not), an image file, or a folder of images (class sub-folders, or flat and read recursively in path order)'),
  out: text('a file path').describe('output .safetensors file'),
  batchSize: int(1, 65_536).default(64).describe('images per forward pass'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda or cuda:N'),
  mean: stats('mean').optional().describe('per-channel mean, comma-separated (default: ImageNet for 3 channels, 0.5 for 1)'),
  std: stats('std').optional().describe('per-channel std, comma-separated (default: ImageNet for 3 channels, 0.5 for 1)'),
  heads: int(1, 1024).optional().describe('attention heads of a .pth model (default: width / 64)'),
  student: flag().optional().describe('embed with the student encoder instead of the teacher'),
  skipBad: flag().optional().describe('report and leave out images that fail to decode (the output then holds "indices", the dataset index of each row)'),
  strict: flag().optional().describe('stop at the first image that fails to decode (the default)'),
  quiet: flag().optional().describe('no progress bar'),
  plainLinear: flag().optional().describe("ATen's linear as in PyTorch's eager forward, instead of the packed product (CPU float32: the same values to float rounding; the packed one is about 20% faster)"),
});

const EMBED_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--images <path>', path: 'images' },
  { flags: '--out <file>', path: 'out' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--mean <list>', path: 'mean' },
  { flags: '--std <list>', path: 'std' },
  { flags: '--heads <n>', path: 'heads' },
  { flags: '--student', path: 'student' },
  { flags: '--skip-bad', path: 'skipBad' },
  { flags: '--strict', path: 'strict' },
  { flags: '--quiet', path: 'quiet' },
  { flags: '--plain-linear', path: 'plainLinear' },
];

export function addEmbedCommand(program: Command): void {
  const cmd = program.command('embed')
    .description("write the teacher's instance features (after the final norm) for every image, in order, to a safetensors file under \"features\"");
  addSchemaOptions(cmd, embedCommandSchema, EMBED_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (flags: Record<string, unknown>) => {
    const o = parseConfig(embedCommandSchema, inputFromFlags(flags, embedCommandSchema, EMBED_FLAGS), { what: 'embed option' });
    if (o.skipBad && o.strict) throw new Error('--skip-bad and --strict contradict each other; pass one');
    let bar: ProgressBar | null = null;
    let shown = 0;
    const r = await embedToFile({
      checkpoint: o.checkpoint, images: o.images, out: o.out, batchSize: o.batchSize, device: o.device, mean: o.mean, std: o.std,
      heads: o.heads, which: o.student ? 'student' : 'teacher', strict: !o.skipBad, packWeights: !o.plainLinear,
      onSkip: (name, e) => process.stderr.write(`${bar ? '\n' : ''}skipped ${name}: ${e.message}\n`),
      onProgress: o.quiet ? undefined : (done, total) => {
        bar ??= new ProgressBar({ total, label: `embed ${path.basename(o.images)}`, unit: 'img' });
        bar.tick(done - shown);
        shown = done;
      },
    });
    (bar as ProgressBar | null)?.finish();
    const skipped = r.skipped.length > 0 ? ` (${r.skipped.length} skipped)` : '';
    process.stderr.write(`wrote ${r.count} x ${r.width} features to ${r.out} in ${r.seconds.toFixed(1)} s${skipped}\n`);
  });
}
