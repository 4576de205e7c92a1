// The `extrema` command line (commander). Each command is a thin parser over
// a library function, so everything it does is also available from code.
import { Command, InvalidArgumentError } from 'commander';
import { embed } from './embed';
import { addPretrainCommands } from './pretrain';
import { attentionFigure } from './attention';

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
    .option('--quiet', 'no progress bar')
    .action(async (opts: { checkpoint: string; images: string; out: string; batchSize: number; device: string; mean?: number[]; std?: number[]; heads?: number; student?: boolean; quiet?: boolean }) => {
      const r = await embed({ ...opts, which: opts.student ? 'student' : 'teacher' });
      process.stderr.write(`wrote ${r.count} x ${r.width} features to ${r.out} in ${r.seconds.toFixed(1)} s\n`);
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
