// The run's curves as images, redrawn from log.jsonl after every epoch: loss
// per step (with a moving average), learning rate, collapse signs, and kNN accuracy.
import * as path from 'node:path';
import { RunLog } from '../io/run-log';
import { writeChart } from './plot';
import { COLLAPSE_SPREAD_WARNING } from '../extrema/collapse';

function movingAverage(points: [number, number][], window: number): [number, number][] {
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += (points[i] as [number, number])[1];
    if (i >= window) sum -= (points[i - window] as [number, number])[1];
    if (i >= window - 1) out.push([(points[i] as [number, number])[0], sum / window]);
  }
  return out;
}

/** Writes loss.png, lr.png, and (with their records) collapse.png and knn.png into the run folder; returns their paths. */
export async function writeRunPlots(out: string): Promise<string[]> {
  const records = RunLog.read(path.join(out, 'log.jsonl'));
  const steps = records.filter((r) => r.kind === 'step');
  const knn = records.filter((r) => r.kind === 'knn');
  const written: string[] = [];
  if (steps.length > 0) {
    const loss = steps.map((r) => [r.epoch as number, r.loss as number] as [number, number]);
    const window = Math.min(50, Math.floor(loss.length / 10));
    const lossFile = path.join(out, 'loss.png');
    await writeChart(lossFile, {
      title: 'ExtreMA training loss', xLabel: 'epoch', yLabel: 'loss (log scale)', logY: true,
      series: window < 2 ? [{ name: 'per step', points: loss }]
        : [{ name: 'per step', points: loss, color: '#9ecae1' }, { name: `moving average (${window} steps)`, points: movingAverage(loss, window), color: '#08519c' }],
    });
    const lrFile = path.join(out, 'lr.png');
    await writeChart(lrFile, { title: 'Learning rate', xLabel: 'epoch', yLabel: 'lr', series: [{ name: 'lr', points: steps.map((r) => [r.epoch as number, r.lr as number]) }] });
    written.push(lossFile, lrFile);
  }
  const measured = steps.filter((r) => typeof r.spread === 'number');
  if (measured.length > 0) {
    // effective rank over its maximum, so all three share one 0-1 axis
    const rankScale = Math.max(...measured.map((r) => r.effectiveRank as number), 1);
    const collapseFile = path.join(out, 'collapse.png');
    await writeChart(collapseFile, {
      title: `Collapse signs (teacher, one batch; spread below ${COLLAPSE_SPREAD_WARNING} is collapsing)`, xLabel: 'epoch', yLabel: 'value',
      series: [
        { name: 'spread of the targets', points: measured.map((r) => [r.epoch as number, r.spread as number]) },
        { name: `effective rank / ${rankScale.toFixed(1)}`, points: measured.map((r) => [r.epoch as number, (r.effectiveRank as number) / rankScale]) },
        { name: 'mean cosine between images', points: measured.map((r) => [r.epoch as number, r.meanCosine as number]) },
      ],
    });
    written.push(collapseFile);
  }
  if (knn.length > 0) {
    const knnFile = path.join(out, 'knn.png');
    await writeChart(knnFile, {
      title: 'kNN accuracy (teacher features)', xLabel: 'epoch', yLabel: 'top-1 accuracy',
      series: [{ name: 'kNN top-1', points: knn.map((r) => [r.epoch as number, r.accuracy as number]) }],
    });
    written.push(knnFile);
  }
  return written;
}
