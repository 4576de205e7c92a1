// The `extrema` command line (commander). Each command is a thin parser over
// a library function, so everything it does is also available from code.
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { embedToFile } from '../eval/embed';
import { addPretrainCommands } from './pretrain';
import { attentionFigure } from '../eval/attention-maps';
import { ProgressBar } from './progress';

function positiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`Expected a positive integer for ${name} but received "${value}"`);
  return n;
}

function numberList(value: string, name: string): number[] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError(`Expected comma-separated numbers for ${name} but received "${value}"`);
  return parts;
}

export function buildProgram(): Command {
  const program = new Command('extrema')
    .description('ExtreMA self-supervised visual representation learning on libtorch')
    .showHelpAfterError();

  program.command('embed')
    .description("write the teacher's instance features (after the final norm) for every image, in order, to a safetensors file under \"features\"")
    .requiredOption('--checkpoint <file>', "an ExtreMA checkpoint: this project's .safetensors or the authors' .pth")
    .requiredOption('--images <path>', 'an IDX file (.gz or not) or a folder of images (read recursively, sorted by path)')
    .requiredOption('--out <file>', 'output .safetensors file')
    .option('--batch-size <n>', 'images per forward pass', (v) => positiveInt(v, '--batch-size'), 64)
    .option('--device <device>', 'cpu, cuda or cuda:N', 'cpu')
    .option('--mean <list>', 'per-channel mean (default: ImageNet for 3 channels, 0.5 for 1)', (v) => numberList(v, '--mean'))
    .option('--std <list>', 'per-channel std (default: ImageNet for 3 channels, 0.5 for 1)', (v) => numberList(v, '--std'))
    .option('--heads <n>', 'attention heads of a .pth model (default: width / 64)', (v) => positiveInt(v, '--heads'))
    .option('--student', "embed with the student encoder instead of the teacher")
    .option('--skip-bad', 'report and leave out images that fail to decode (the output then holds "indices", the dataset index of each row)')
    .option('--strict', 'stop at the first image that fails to decode (the default)')
    .option('--quiet', 'no progress bar')
    .action(async (opts: { checkpoint: string; images: string; out: string; batchSize: number; device: string; mean?: number[]; std?: number[]; heads?: number; student?: boolean; skipBad?: boolean; strict?: boolean; quiet?: boolean }) => {
      if (opts.skipBad && opts.strict) throw new InvalidArgumentError('--skip-bad and --strict contradict each other; pass one');
      let bar: ProgressBar | null = null;
      let shown = 0;
      const r = await embedToFile({
        checkpoint: opts.checkpoint, images: opts.images, out: opts.out, batchSize: opts.batchSize, device: opts.device, mean: opts.mean, std: opts.std,
        heads: opts.heads, which: opts.student ? 'student' : 'teacher', strict: !opts.skipBad,
        onSkip: (name, e) => process.stderr.write(`${bar ? '\n' : ''}skipped ${name}: ${e.message}\n`),
        onProgress: opts.quiet ? undefined : (done, total) => {
          bar ??= new ProgressBar({ total, label: `embed ${path.basename(opts.images)}`, unit: 'img' });
          bar.tick(done - shown);
          shown = done;
        },
      });
      (bar as ProgressBar | null)?.finish();
      const skipped = r.skipped.length > 0 ? ` (${r.skipped.length} skipped)` : '';
      process.stderr.write(`wrote ${r.count} x ${r.width} features to ${r.out} in ${r.seconds.toFixed(1)} s${skipped}\n`);
    });

  program.command('attention')
    .description('a PNG of images beside the attention maps of the class token (last class-attention block by default)')
    .requiredOption('--checkpoint <file>', "this project's .safetensors or the authors' .pth")
    .requiredOption('--images <path>', 'an IDX file or an image folder (the first --count images are drawn)')
    .requiredOption('--out <file.png>', 'output PNG')
    .option('--count <n>', 'images', (v) => positiveInt(v, '--count'), 16)
    .option('--columns <n>', 'image pairs per row', (v) => positiveInt(v, '--columns'), 8)
    .option('--block <name>', 'block whose attention to draw, e.g. blocks_token.0 or blocks.11')
    .option('--heads <n>', 'attention heads of a .pth model (default: width / 64)', (v) => positiveInt(v, '--heads'))
    .option('--student', 'the student encoder instead of the teacher')
    .option('--device <device>', 'cpu, cuda or cuda:N', 'cpu')
    .action(async (opts: { checkpoint: string; images: string; out: string; count: number; columns: number; block?: string; heads?: number; student?: boolean; device: string }) => {
      const r = await attentionFigure({ ...opts, which: opts.student ? 'student' : 'teacher' });
      process.stderr.write(`wrote attention maps of ${r.count} images to ${r.out}\n`);
    });

  addPretrainCommands(program);
  return program;
}
