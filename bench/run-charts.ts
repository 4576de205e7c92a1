// Charts comparing pretraining runs from their log.jsonl files: kNN per epoch,
// the training loss (moving average) and the teacher's target spread, one
// line per run. Used by bench/recipes/grid.ts, and from the command line:
//   node dist/bench/run-charts.js <out prefix> <title> name=<run folder> [name=<run folder> ...]
// writes <out prefix>-knn.png, -loss.png and -spread.png (a chart only where some run has its values;
// a PyTorch reference run's log, bench/pretrain_reference.py, has kNN and loss).
import * as path from 'node:path';
import { RunLog } from '../lib/io/run-log';
import { writeChart, type ChartSeries } from '../lib/train/plot';

type P = [number, number];

/** Moving average over `window` points (the per-step loss is noisy). */
function smooth(points: P[], window: number): P[] {
  return points.slice(window - 1).map((p, i) => [p[0], points.slice(i, i + window).reduce((a, q) => a + q[1], 0) / window]);
}

export async function writeRunCharts(prefix: string, title: string, runs: ReadonlyArray<{ name: string; out: string }>): Promise<string[]> {
  const logs = runs.map(({ name, out }) => ({ name, log: RunLog.read(path.join(out, 'log.jsonl')) }));
  const series = (pick: (log: ReturnType<typeof RunLog.read>) => P[]): ChartSeries[] =>
    logs.map(({ name, log }) => ({ name, points: pick(log) })).filter((s) => s.points.length > 0);
  const steps = (log: ReturnType<typeof RunLog.read>) => log.filter((r) => r.kind === 'step');
  const charts: Array<[string, Parameters<typeof writeChart>[1]]> = [
    ['knn', { title: `kNN top-1 of the teacher (${title})`, xLabel: 'epoch', yLabel: 'kNN top-1', series: series((log) => log.filter((r) => r.kind === 'knn').map((r) => [r.epoch as number, r.accuracy as number])) }],
    ['loss', { title: `training loss, moving average of 10 steps (${title})`, xLabel: 'epoch', yLabel: 'loss', logY: true, series: series((log) => smooth(steps(log).map((r) => [r.epoch as number, r.loss as number]), 10)) }],
    ['spread', { title: `teacher target spread, 1 spread out, 0 collapsed (${title})`, xLabel: 'epoch', yLabel: 'spread', series: series((log) => steps(log).filter((r) => typeof r.spread === 'number').map((r) => [r.epoch as number, r.spread as number])) }],
  ];
  const files: string[] = [];
  for (const [kind, chart] of charts) {
    if (chart.series.length === 0) continue;
    const file = `${prefix}-${kind}.png`;
    await writeChart(file, chart);
    files.push(file);
  }
  return files;
}

if (require.main === module) {
  const [prefix, title, ...specs] = process.argv.slice(2);
  if (prefix === undefined || title === undefined || specs.length === 0 || specs.some((s) => !s.includes('='))) {
    process.stderr.write('usage: node dist/bench/run-charts.js <out prefix> <title> name=<run folder> [name=<run folder> ...]\n');
    process.exit(2);
  }
  const runs = specs.map((s) => ({ name: s.slice(0, s.indexOf('=')), out: s.slice(s.indexOf('=') + 1) }));
  writeRunCharts(prefix, title, runs).then((files) => process.stdout.write(`${files.join('\n')}\n`), (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
