// Runs a named grid of short pretraining recipes (./grids.ts) one after the
// other through the library's pretrain(), each into runs/recipes/<grid>/<name>/,
// and writes bench/results/recipes-<grid>.md (one table) and .jsonl (one
// record a config). A config whose folder holds result.json is finished and
// read back instead of run, so a killed grid resumes where it stopped (an
// unfinished config continues from its own checkpoint). Charts of every
// config's kNN, loss and spread curves go beside the table as PNGs.
//   node dist/bench/recipes/grid.js [--grid default] [--only a,b] [--epochs N] [--train-limit N] [--threads N]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { pretrain } from '../../lib/train/pretrain';
import { pretrainConfig, type PretrainConfig, type PretrainConfigInput } from '../../lib/train/config';
import { mergeConfig } from '../../lib/config';
import { RunLog } from '../../lib/io/run-log';
import { writeRunCharts } from '../run-charts';
import { setNumThreads } from '../../lib/runtime/device-runtime';
import { GRIDS, type GridEntry } from './grids';

const ROOT = path.resolve(__dirname, '..', '..', '..');

interface GridResult {
  name: string;
  differs: string;
  knnBefore: number | null;
  knnAfter: number | null;
  probeBefore: number | null;
  probeAfter: number | null;
  /** Collapse signs of the last measured step (teacher, one batch). */
  spread: number | null;
  effectiveRank: number | null;
  meanCosine: number | null;
  finalLoss: number | null;
  iterations: number;
  /** Seconds this process spent on the config (a resumed config counts only its last part). */
  seconds: number;
  config: PretrainConfig;
}

function positive(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for ${flag} but received "${value}"`);
  return n;
}

function options() {
  const { values } = parseArgs({
    options: {
      grid: { type: 'string', default: 'default' },
      only: { type: 'string' },
      epochs: { type: 'string' },
      'train-limit': { type: 'string' },
      threads: { type: 'string' },
    },
  });
  const grid = GRIDS[values.grid];
  if (grid === undefined) throw new RangeError(`Unknown grid "${values.grid}"; the grids are ${Object.keys(GRIDS).join(', ')}`);
  let entries = grid.entries;
  if (values.only !== undefined) {
    const wanted = values.only.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    const unknown = wanted.filter((w) => !entries.some((e) => e.name === w));
    if (unknown.length > 0) throw new RangeError(`--only names ${unknown.join(', ')}, not in grid "${values.grid}" (${entries.map((e) => e.name).join(', ')})`);
    entries = entries.filter((e) => wanted.includes(e.name));
  }
  const epochs = positive(values.epochs, '--epochs');
  const trainLimit = positive(values['train-limit'], '--train-limit');
  // A shortened grid gets its own folders and report, so it never stands in for the real one.
  const name = values.grid + (epochs === undefined ? '' : `-e${epochs}`) + (trainLimit === undefined ? '' : `-n${trainLimit}`);
  return { name, base: grid.base, entries, epochs, trainLimit, threads: positive(values.threads, '--threads') };
}

/** The entry's full recipe: base < entry < command-line overrides, with its own run folder. */
function recipe(o: ReturnType<typeof options>, e: GridEntry): PretrainConfig {
  const over: PretrainConfigInput = { out: path.join(ROOT, 'runs', 'recipes', o.name, e.name) };
  if (o.epochs !== undefined) {
    over.epochs = o.epochs;
    // keep the base's warmup unless it no longer fits (it must end before the last epoch)
    const warmup = Number(o.base.warmupEpochs ?? 0);
    if (warmup >= o.epochs) over.warmupEpochs = o.epochs / 4;
    over.knn = { every: Math.max(1, Math.floor(o.epochs / 2)) };
  }
  if (o.trainLimit !== undefined) over.trainLimit = o.trainLimit;
  return pretrainConfig(mergeConfig(mergeConfig(o.base, e.config), over));
}

function lastCollapse(out: string): Pick<GridResult, 'spread' | 'effectiveRank' | 'meanCosine' | 'finalLoss'> {
  const steps = RunLog.read(path.join(out, 'log.jsonl')).filter((r) => r.kind === 'step');
  const measured = steps.filter((r) => typeof r.spread === 'number');
  const last = measured[measured.length - 1];
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  return { spread: num(last?.spread), effectiveRank: num(last?.effectiveRank), meanCosine: num(last?.meanCosine), finalLoss: num(steps[steps.length - 1]?.loss) };
}

/** Two recipes alike but for their run folders. */
function sameRecipe(a: PretrainConfig, b: PretrainConfig): boolean {
  return JSON.stringify({ ...a, out: '' }) === JSON.stringify({ ...b, out: '' });
}

/**
 * An entry's result recorded by the grid it names in `sameAs` (its run
 * folder, else that grid's report), renamed for this grid; null when there is
 * none or its recipe differs from this one in anything but the run folder.
 */
function recordedElsewhere(e: GridEntry, cfg: PretrainConfig): { result: GridResult; from: string } | null {
  const { grid, name } = e.sameAs!;
  const folder = path.join(ROOT, 'runs', 'recipes', grid, name, 'result.json');
  const report = path.join(ROOT, 'bench', 'results', `recipes-${grid}.jsonl`);
  const candidates: { result: GridResult; from: string }[] = [];
  if (fs.existsSync(folder)) candidates.push({ result: JSON.parse(fs.readFileSync(folder, 'utf8')) as GridResult, from: folder });
  if (fs.existsSync(report)) {
    for (const line of fs.readFileSync(report, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const r = JSON.parse(line) as GridResult;
      if (r.name === name) candidates.push({ result: r, from: report });
    }
  }
  const found = candidates.find((c) => sameRecipe(c.result.config, cfg));
  return found === undefined ? null : { result: { ...found.result, name: e.name, differs: e.differs }, from: found.from };
}

const pct = (v: number | null) => (v === null ? '-' : (v * 100).toFixed(1));
const fixed = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));

function writeReport(name: string, results: GridResult[]): string {
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const lines = [
    `# Recipe grid "${name}"`,
    '',
    'kNN and the cached linear probe on the teacher (top-1 %, before -> after); spread, effective rank and mean cosine of the teacher on the last measured batch (spread ~1 spread out, 0 collapsed; see lib/extrema/collapse.ts).',
    '',
    '| name | differs from the base | kNN | probe | final loss | spread | eff. rank | mean cos | wall |',
    '|---|---|---|---|---|---|---|---|---|',
    ...results.map((r) => `| ${r.name} | ${r.differs} | ${pct(r.knnBefore)} -> ${pct(r.knnAfter)} | ${pct(r.probeBefore)} -> ${pct(r.probeAfter)} | ${fixed(r.finalLoss, 3)} | ${fixed(r.spread, 2)} | ${fixed(r.effectiveRank, 1)} | ${fixed(r.meanCosine, 2)} | ${(r.seconds / 60).toFixed(1)} min |`),
    '',
  ];
  const md = path.join(dir, `recipes-${name}.md`);
  fs.writeFileSync(md, lines.join('\n'));
  fs.writeFileSync(path.join(dir, `recipes-${name}.jsonl`), results.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return md;
}

async function main(): Promise<void> {
  const o = options();
  if (o.threads !== undefined) setNumThreads(o.threads);
  // Every recipe is checked before the first one spends minutes.
  const planned = o.entries.map((e) => ({ entry: e, cfg: recipe(o, e) }));
  const results: GridResult[] = [];
  for (const { entry, cfg } of planned) {
    const done = path.join(cfg.out, 'result.json');
    if (fs.existsSync(done)) {
      process.stderr.write(`${entry.name}: finished before, read from ${done}\n`);
      results.push(JSON.parse(fs.readFileSync(done, 'utf8')) as GridResult);
      continue;
    }
    const same = entry.sameAs === undefined ? null : recordedElsewhere(entry, cfg);
    if (same !== null) {
      process.stderr.write(`${entry.name}: the same recipe as ${entry.sameAs!.grid}/${entry.sameAs!.name}, read from ${same.from}\n`);
      results.push(same.result);
      continue;
    }
    process.stderr.write(`${entry.name}: ${entry.differs} -> ${cfg.out}\n`);
    const started = performance.now();
    const r = await pretrain(cfg, {
      onMessage: (line) => process.stderr.write(`  ${line}\n`),
      onKnn: ({ epoch, accuracy }) => process.stderr.write(`  kNN after epoch ${epoch}: ${pct(accuracy)}\n`),
      onProbe: ({ epoch, top1 }) => process.stderr.write(`  probe after epoch ${epoch}: ${pct(top1)}\n`),
      onEpoch: ({ epoch, seconds }) => process.stderr.write(`  epoch ${epoch} (${seconds.toFixed(0)} s)\n`),
    }, { resume: 'auto' });
    const result: GridResult = {
      name: entry.name, differs: entry.differs,
      knnBefore: r.knnBefore, knnAfter: r.knnAfter, probeBefore: r.probeBefore, probeAfter: r.probeAfter,
      ...lastCollapse(cfg.out), iterations: r.iterations, seconds: (performance.now() - started) / 1000, config: cfg,
    };
    fs.writeFileSync(done, `${JSON.stringify(result, null, 2)}\n`);
    results.push(result);
    // The table after every config, so a long grid shows its progress.
    writeReport(o.name, results);
  }
  process.stdout.write(`${writeReport(o.name, results)}\n`);
  const charts = await writeRunCharts(path.join(ROOT, 'bench', 'results', `recipes-${o.name}`), `grid "${o.name}"`, results.map((r) => ({ name: r.name, out: r.config.out })));
  if (charts.length > 0) process.stdout.write(`${charts.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
