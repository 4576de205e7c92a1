// `extrema linprobe`: the options schema, its flags, and a progress bar around
// the library workflow linearProbe (lib/eval/linprobe.ts).
import type { Command } from 'commander';
import { linearProbe } from '../eval/linprobe';
import { addSchemaOptions, inputFromFlags, parseConfig, int, num, text, flag, choice, record, type FlagSpec } from '../config';
import { ProgressBar } from './progress';

export const linprobeCommandSchema = record({
  checkpoint: text('a file path').describe("an ExtreMA checkpoint: this project's .safetensors or the authors' .pth"),
  train: text('a path').describe('training images: an IDX file (labels found beside it) or an image folder with one sub-folder per class'),
  test: text('a path').describe('test images, as --train; every test class must be a training class'),
  out: text('a folder path').describe('run folder: metrics.json, confusion.png, head.safetensors, log.jsonl'),
  mode: choice(['cached', 'augmented']).default('cached').describe('cached: features extracted once, no augmentation; augmented: random resized crop + flip of every batch through the encoder'),
  epochs: int(1, 100_000).optional().describe('epochs (default 20 cached, 90 augmented)'),
  warmupEpochs: num(0, 100_000).optional().describe('linear warmup in epochs, then a half cosine (default 10% of the epochs cached, 10 of 90 augmented)'),
  batchSize: int(2, 65_536).default(256).describe('features per SGD step'),
  baseLr: num(0, 10, { lowOpen: true, highOpen: true }).default(0.1).describe('lr = base-lr x batch-size / 256'),
  momentum: num(0, 1, { highOpen: true }).default(0.9).describe('SGD momentum'),
  weightDecay: num(0, 1).default(0).describe('SGD weight decay'),
  lars: flag().optional().describe("LARS (MAE's, trust coefficient 0.001) instead of SGD, as the authors' --lars"),
  seed: int(0, 2 ** 31 - 1).default(0).describe('seed of the head initialisation, the shuffle and the augmentation'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda or cuda:N'),
  embedBatchSize: int(1, 65_536).default(256).describe('images per encoder pass when extracting features'),
  limit: int(0, 1e9).default(0).describe('use only the first n images of each set (0: all)'),
  heads: int(1, 1024).optional().describe('attention heads of a .pth model (default: width / 64)'),
  student: flag().optional().describe('probe the student encoder instead of the teacher'),
  quiet: flag().optional().describe('no progress bar'),
  plainLinear: flag().optional().describe("ATen's linear as in PyTorch's eager forward, instead of the packed product (CPU float32: the same values to float rounding; the packed one is about 20% faster)"),
});

const LINPROBE_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--train <path>', path: 'train' },
  { flags: '--test <path>', path: 'test' },
  { flags: '--out <folder>', path: 'out' },
  { flags: '--mode <mode>', path: 'mode' },
  { flags: '--epochs <n>', path: 'epochs' },
  { flags: '--warmup-epochs <n>', path: 'warmupEpochs' },
  { flags: '--batch-size <n>', path: 'batchSize' },
  { flags: '--base-lr <lr>', path: 'baseLr' },
  { flags: '--momentum <m>', path: 'momentum' },
  { flags: '--weight-decay <wd>', path: 'weightDecay' },
  { flags: '--lars', path: 'lars' },
  { flags: '--seed <n>', path: 'seed' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--embed-batch-size <n>', path: 'embedBatchSize' },
  { flags: '--limit <n>', path: 'limit' },
  { flags: '--heads <n>', path: 'heads' },
  { flags: '--student', path: 'student' },
  { flags: '--quiet', path: 'quiet' },
  { flags: '--plain-linear', path: 'plainLinear' },
];

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export function addLinprobeCommand(program: Command): void {
  const cmd = program.command('linprobe')
    .description("linear probe of a frozen encoder (the authors' main_lincls): BatchNorm + Linear on the class token before the final norm, SGD with warmup and cosine; prints and saves top-1/top-5 and per-class accuracy, a confusion matrix and the head");
  addSchemaOptions(cmd, linprobeCommandSchema, LINPROBE_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (flags: Record<string, unknown>) => {
    const o = parseConfig(linprobeCommandSchema, inputFromFlags(flags, linprobeCommandSchema, LINPROBE_FLAGS), { what: 'linprobe option' });
    let bar: ProgressBar | null = null;
    const r = await linearProbe({
      checkpoint: o.checkpoint, train: o.train, test: o.test, out: o.out, mode: o.mode, epochs: o.epochs, warmupEpochs: o.warmupEpochs,
      batchSize: o.batchSize, baseLr: o.baseLr, momentum: o.momentum, weightDecay: o.weightDecay, lars: o.lars, seed: o.seed, device: o.device,
      embedBatchSize: o.embedBatchSize, limit: o.limit, heads: o.heads, which: o.student ? 'student' : 'teacher', packWeights: !o.plainLinear,
      onEvent: (message) => process.stderr.write(`${message}\n`),
      onStep: o.quiet ? undefined : (_step, total, loss) => {
        bar ??= new ProgressBar({ total, label: `linprobe ${o.mode}`, unit: 'step' });
        bar.tick(1, `loss ${loss.toFixed(4)}`);
      },
    });
    (bar as ProgressBar | null)?.finish();
    const lines = [`top-1 ${pct(r.metrics.top1)}  top-5 ${pct(r.metrics.top5)}  (${r.metrics.count} test images, ${r.seconds.toFixed(1)} s)`, 'per class:'];
    r.metrics.perClass.forEach((a, i) => lines.push(`  ${(r.classes?.[i] ?? String(i)).padEnd(16)} ${a === null ? '(no test images)' : pct(a)}`));
    lines.push(`wrote ${r.files.metrics}, ${r.files.confusion}, ${r.files.head}, ${r.files.log}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  });
}
