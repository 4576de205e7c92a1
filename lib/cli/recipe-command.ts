// A command that trains from a recipe (pretrain, finetune, the ones to
// come): the recipe's flags generated from its schema, plus the flags about
// the run rather than the recipe (--preset, --config, --resume, --stop-after,
// --threads, --quiet, --print-config) from a schema of their own. The recipe
// is preset < --config file (JSON or YAML) < flags.
import { Option, type Command } from 'commander';
import type { z } from 'zod';
import { schemaOptions, inputFromFlags, parseConfig, readConfigFile, mergeConfig, formatConfig, int, text, choice, flag, record, CONFIG_FORMATS, type FlagSpec, type ConfigFormat } from '../config';
import { setNumThreads } from '../runtime/device-runtime';
import { ProgressBar } from './progress';
import { COLLAPSE_SPREAD_WARNING } from '../extrema/collapse';

export interface RunOptions {
  preset?: string;
  config?: string;
  resume: string;
  stopAfter?: number;
  threads?: number;
  quiet?: boolean;
}

function runSchema(presets: readonly string[], defaultPreset: string) {
  return record({
    preset: choice(presets as [string, ...string[]]).optional().describe(`recipe preset (default ${defaultPreset})`),
    config: text('a file path').optional().describe('recipe file, JSON or YAML (the fields of config.json); flags override it'),
    resume: text('a checkpoint file, "auto" or "never"').default('auto').describe('resume from a checkpoint; "auto" (default) resumes from the run folder if it has one, "never" starts over'),
    stopAfter: int(1, Number.MAX_SAFE_INTEGER).optional().describe('stop (with a checkpoint) after n optimizer steps in total'),
    threads: int(1, 4096).optional().describe("intra-op CPU threads (default: libtorch's choice)"),
    quiet: flag().optional().describe('no progress bar'),
  });
}

const RUN_FLAGS: readonly FlagSpec[] = [
  { flags: '--preset <name>', path: 'preset' },
  { flags: '--config <file>', path: 'config' },
  { flags: '--resume <file>', path: 'resume' },
  { flags: '--stop-after <n>', path: 'stopAfter' },
  { flags: '--threads <n>', path: 'threads' },
  { flags: '--quiet', path: 'quiet' },
];

/** The recipe the flags describe: preset < --config file < recipe flags (not yet resolved or checked). */
export function recipeInput(flags: Record<string, unknown>, run: Pick<RunOptions, 'preset' | 'config'>, schema: z.ZodType, table: readonly FlagSpec[]): Record<string, unknown> {
  const file = run.config === undefined ? {} : readConfigFile(run.config);
  const preset = run.preset === undefined ? {} : { preset: run.preset };
  return mergeConfig(mergeConfig(file, preset), inputFromFlags(flags, schema, table)) as Record<string, unknown>;
}

export interface RecipeCommandSpec {
  name: string;
  description: string;
  schema: z.ZodType;
  flags: readonly FlagSpec[];
  presets: readonly string[];
  defaultPreset: string;
  /** Resolves and checks a recipe (for --print-config). */
  resolve(input: Record<string, unknown>): unknown;
  /** Runs the recipe. */
  run(input: Record<string, unknown>, options: RunOptions): Promise<void>;
}

export function addRecipeCommand(program: Command, spec: RecipeCommandSpec): Command {
  const schema = runSchema(spec.presets, spec.defaultPreset);
  const cmd = program.command(spec.name).description(spec.description);
  const [preset, config, ...rest] = schemaOptions(schema, RUN_FLAGS);
  for (const option of [preset!, config!, ...schemaOptions(spec.schema, spec.flags), ...rest]) cmd.addOption(option);
  cmd.addOption(new Option('--print-config [format]', 'print the resolved recipe (json, the form of config.json, or yaml) and exit without training').choices(CONFIG_FORMATS));
  cmd.action(async (flags: Record<string, unknown>) => {
    const run = parseConfig(schema, inputFromFlags(flags, schema, RUN_FLAGS), { what: `${spec.name} option` }) as RunOptions;
    const input = recipeInput(flags, run, spec.schema, spec.flags);
    if (flags.printConfig !== undefined) {
      const format: ConfigFormat = flags.printConfig === true ? 'json' : (flags.printConfig as ConfigFormat);
      process.stdout.write(formatConfig(spec.resolve(input), format));
      return;
    }
    if (run.threads !== undefined) setNumThreads(run.threads);
    await spec.run(input, run);
  });
  return cmd;
}

/** A progress bar per epoch for a training loop's step hook (nothing when quiet). */
export function epochProgress(quiet: boolean): {
  step(r: { epoch: number; step: number; stepsPerEpoch: number; loss: number; lr: number; imagesPerSecond: number; collapse?: { spread: number } }): void;
  /** Ends the epoch's bar (before a message, or at the end of the epoch). */
  end(): void;
} {
  let bar: ProgressBar | null = null;
  let barEpoch = -1;
  let spread: number | null = null;
  return {
    step(r) {
      if (quiet) return;
      if (r.epoch !== barEpoch) {
        bar?.finish();
        bar = new ProgressBar({ total: r.stepsPerEpoch, label: `epoch ${r.epoch + 1}`, unit: 'step' });
        bar.tick(r.step - 1);
        barEpoch = r.epoch;
      }
      if (r.collapse !== undefined) spread = r.collapse.spread;
      const health = spread === null ? '' : spread < COLLAPSE_SPREAD_WARNING ? ` spread ${spread.toFixed(2)} < ${COLLAPSE_SPREAD_WARNING}: COLLAPSING?` : ` spread ${spread.toFixed(2)}`;
      bar?.tick(1, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${r.imagesPerSecond.toFixed(0)} img/s${health}`);
    },
    end() {
      bar?.finish();
      bar = null;
      barEpoch = -1;
    },
  };
}

/** A fraction as a percentage for summaries ("n/a" for null). */
export const percent = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(2)}%`);
