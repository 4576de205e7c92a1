// `extrema predict`: the options schema, its flags, and a progress bar around
// the library workflow predictToFile (lib/eval/predict.ts).
import * as path from 'node:path';
import type { Command } from 'commander';
import { predictToFile } from '../eval/predict';
import { addSchemaOptions, inputFromFlags, parseConfig, int, text, flag, record, type FlagSpec } from '../config';
import { ProgressBar } from './progress';

export const predictCommandSchema = record({
  checkpoint: text('a file path').describe('a fine-tuned classifier (.safetensors written by extrema finetune)'),
  images: text('a path').describe('an IDX file (.gz or not), an image file, or a folder of images (class sub-folders, or flat and read recursively in path order)'),
  out: text('a file path').describe('output .jsonl file: one line per image with its top-k classes, names and probabilities'),
  topK: int(1, 100_000).default(5).describe('classes per image (at most the number of classes)'),
  batchSize: int(1, 65_536).default(256).describe('images per forward pass'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda or cuda:N'),
  quiet: flag().optional().describe('no progress bar'),
  plainLinear: flag().optional().describe("ATen's linear as in PyTorch's eager forward, instead of the packed product (CPU float32: the same values to float rounding; the packed one is about 20% faster)"),
});

const PREDICT_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--images <path>', path: 'images' },
  { flags: '--out <file>', path: 'out' },
  { flags: '--top-k <n>', path: 'topK' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--quiet', path: 'quiet' },
  { flags: '--plain-linear', path: 'plainLinear' },
];

export function addPredictCommand(program: Command): void {
  const cmd = program.command('predict')
    .description("classify images with a fine-tuned checkpoint: top-k classes with probabilities and the checkpoint's class names, one JSON line per image");
  addSchemaOptions(cmd, predictCommandSchema, PREDICT_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (flags: Record<string, unknown>) => {
    const o = parseConfig(predictCommandSchema, inputFromFlags(flags, predictCommandSchema, PREDICT_FLAGS), { what: 'predict option' });
    let bar: ProgressBar | null = null;
    let shown = 0;
    const r = await predictToFile({
      checkpoint: o.checkpoint, images: o.images, out: o.out, topK: o.topK, batchSize: o.batchSize, device: o.device, packWeights: !o.plainLinear,
      onProgress: o.quiet ? undefined : (done, total) => {
        bar ??= new ProgressBar({ total, label: `predict ${path.basename(o.images)}`, unit: 'img' });
        bar.tick(done - shown);
        shown = done;
      },
    });
    (bar as ProgressBar | null)?.finish();
    const accuracy = r.accuracy === null ? '' : ` (top-1 accuracy ${(100 * r.accuracy).toFixed(2)}% on the labelled images)`;
    process.stderr.write(`wrote ${r.count} predictions to ${r.out} in ${r.seconds.toFixed(1)} s${accuracy}\n`);
  });
}
