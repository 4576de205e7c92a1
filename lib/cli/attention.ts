// `extrema attention`: the options schema and its flags over the library
// workflow attentionFigure (lib/eval/attention-maps.ts).
import type { Command } from 'commander';
import { attentionFigure } from '../eval/attention-maps';
import { addSchemaOptions, inputFromFlags, parseConfig, int, text, flag, record, type FlagSpec } from '../config';

export const attentionCommandSchema = record({
  checkpoint: text('a file path').describe("this project's .safetensors or the authors' .pth"),
  images: text('a path').describe('an IDX file or an image folder (the first --count images are drawn)'),
  out: text('a .png file path').describe('output PNG'),
  count: int(1, 1024).default(16).describe('images'),
  columns: int(1, 256).default(8).describe('image pairs per row'),
  block: text('a block name').optional().describe('block whose attention to draw, e.g. blocks_token.0 or blocks.11'),
  heads: int(1, 1024).optional().describe('attention heads of a .pth model (default: width / 64)'),
  student: flag().optional().describe('the student encoder instead of the teacher'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda or cuda:N'),
});

const ATTENTION_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--images <path>', path: 'images' },
  { flags: '--out <file.png>', path: 'out' },
  { flags: '--count <n>', path: 'count' },
  { flags: '--columns <n>', path: 'columns' },
  { flags: '--block <name>', path: 'block' },
  { flags: '--heads <n>', path: 'heads' },
  { flags: '--student', path: 'student' },
  { flags: '--device <device>', path: 'device' },
];

export function addAttentionCommand(program: Command): void {
  const cmd = program.command('attention')
    .description('a PNG of images beside the attention maps of the class token (last class-attention block by default)');
  addSchemaOptions(cmd, attentionCommandSchema, ATTENTION_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (flags: Record<string, unknown>) => {
    const o = parseConfig(attentionCommandSchema, inputFromFlags(flags, attentionCommandSchema, ATTENTION_FLAGS), { what: 'attention option' });
    const r = await attentionFigure({ ...o, which: o.student ? 'student' : 'teacher' });
    process.stderr.write(`wrote attention maps of ${r.count} images to ${r.out}\n`);
  });
}
