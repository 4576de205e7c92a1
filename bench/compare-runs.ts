// Compares two pretraining runs' logs (this project's log.jsonl and the
// PyTorch reference's, bench/pretrain_reference.py): one chart of both loss
// curves (moving averages), one of both kNN curves, and a markdown table.
//   node dist/bench/compare-runs.js <extrema run>/log.jsonl <torch run>/log.jsonl <out folder>
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunLog } from '../lib/train';
import { writeChart } from '../lib/train/plot';

type P = [number, number];

function smooth(points: P[], window: number): P[] {
  const out: P[] = [];
  for (let i = window - 1; i < points.length; i++) {
    let s = 0;
    for (let j = i - window + 1; j <= i; j++) s += (points[j] as P)[1];
    out.push([(points[i] as P)[0], s / window]);
  }
  return out;
}

void (async () => {
  const [oursFile, theirsFile, outDir] = process.argv.slice(2);
  if (!oursFile || !theirsFile || !outDir) throw new Error('usage: compare-runs.js <extrema log.jsonl> <torch log.jsonl> <out folder>');
  const ours = RunLog.read(oursFile);
  const theirs = RunLog.read(theirsFile);
  const loss = (r: typeof ours) => r.filter((x) => x.kind === 'step').map((x) => [x.epoch as number, x.loss as number] as P);
  const knn = (r: typeof ours) => r.filter((x) => x.kind === 'knn').map((x) => [x.epoch as number, x.accuracy as number] as P);
  fs.mkdirSync(outDir, { recursive: true });
  const w = 20;
  await writeChart(path.join(outDir, 'parity-loss.png'), {
    title: `Loss, moving average of ${w} steps`, xLabel: 'epoch', yLabel: 'BYOL loss (log scale)', logY: true,
    series: [{ name: 'extrema (TypeScript)', points: smooth(loss(ours), w) }, { name: 'PyTorch reference', points: smooth(loss(theirs), w) }],
  });
  await writeChart(path.join(outDir, 'parity-knn.png'), {
    title: 'kNN top-1 (k 200, T 0.07; bank 10k train, 2k test queries)', xLabel: 'epoch', yLabel: 'accuracy',
    series: [{ name: 'extrema (TypeScript)', points: knn(ours) }, { name: 'PyTorch reference', points: knn(theirs) }],
  });
  const ka = knn(ours);
  const kb = knn(theirs);
  const la = loss(ours);
  const lb = loss(theirs);
  console.log('| epoch | kNN extrema | kNN PyTorch | mean loss extrema | mean loss PyTorch |');
  console.log('|---|---|---|---|---|');
  for (let e = 0; e < Math.max(ka.length, kb.length); e++) {
    const meanIn = (l: P[]) => {
      const xs = l.filter(([x]) => x > e - 1 && x <= e).map(([, y]) => y);
      return xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(4) : '-';
    };
    const pct = (k: P[]) => (k[e] ? `${((k[e] as P)[1] * 100).toFixed(2)}%` : '-');
    console.log(`| ${e} | ${pct(ka)} | ${pct(kb)} | ${e === 0 ? '-' : meanIn(la)} | ${e === 0 ? '-' : meanIn(lb)} |`);
  }
})();
