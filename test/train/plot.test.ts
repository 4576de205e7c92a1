// Curve plots: nice ticks that cover the data, well-formed SVG with escaped
// text and no NaN, lines broken at non-finite points, degenerate inputs, and
// atomic .svg / .png files of the requested size.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { lineChartSvg, writeChart, niceTicks, niceStep, logTicks, formatTick, escapeXml, type LineChartOptions } from '../../lib/train/plot';
import { tmpDir } from '../helpers/oracle';

/** Checks well-formedness: every tag closes in order, attributes are quoted, text and attributes hold only known entities. */
function assertWellFormed(svg: string): string[] {
  const tags: string[] = [];
  const stack: string[] = [];
  const entity = /&(?!(?:amp|lt|gt|quot|apos);)/;
  const attr = /\s+([A-Za-z_:][\w:.-]*)="([^"<]*)"/g;
  let rest = svg.replace(/^<\?xml[^?]*\?>\s*/, '');
  while (rest.length > 0) {
    const lt = rest.indexOf('<');
    const text = lt < 0 ? rest : rest.slice(0, lt);
    assert.ok(!entity.test(text), `raw & in text ${JSON.stringify(text)}`);
    assert.ok(!text.includes('>'), `raw > in text ${JSON.stringify(text)}`);
    if (lt < 0) break;
    const gt = rest.indexOf('>', lt);
    assert.ok(gt > lt, 'unterminated tag');
    const tag = rest.slice(lt, gt + 1);
    rest = rest.slice(gt + 1);
    const close = /^<\/([A-Za-z][\w:-]*)\s*>$/.exec(tag);
    if (close) {
      assert.equal(stack.pop(), close[1], `</${close[1]}> closes the wrong element`);
      continue;
    }
    const open = /^<([A-Za-z][\w:-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)>$/.exec(tag);
    assert.ok(open, `malformed tag ${tag}`);
    for (const m of open[2]!.matchAll(attr)) assert.ok(!entity.test(m[2]!), `raw & in attribute ${m[1]} of ${tag}`);
    tags.push(open[1]!);
    if (open[3] !== '/') stack.push(open[1]!);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(tags[0], 'svg');
  return tags;
}

function plotFrame(svg: string): { x: number; y: number; w: number; h: number } {
  const m = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"\/>/.exec(svg);
  assert.ok(m, 'plot frame');
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

/** Every drawn data coordinate (polyline vertices, markers) lies inside the plot frame. */
function assertInsideFrame(svg: string): number {
  const f = plotFrame(svg);
  const pts: [number, number][] = [];
  for (const m of svg.matchAll(/points="([^"]*)"/g)) {
    for (const p of m[1]!.split(' ')) pts.push(p.split(',').map(Number) as [number, number]);
  }
  for (const m of svg.matchAll(/<circle cx="([^"]+)" cy="([^"]+)"/g)) pts.push([Number(m[1]), Number(m[2])]);
  for (const [x, y] of pts) {
    assert.ok(Number.isFinite(x) && Number.isFinite(y), `coordinate ${x},${y}`);
    assert.ok(x >= f.x - 0.01 && x <= f.x + f.w + 0.01 && y >= f.y - 0.01 && y <= f.y + f.h + 0.01, `${x},${y} outside the frame ${JSON.stringify(f)}`);
  }
  return pts.length;
}

function isNice(step: number): boolean {
  const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-12);
  return [1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-9);
}

test('nice ticks: 1/2/5 x 10^k steps that cover the range', () => {
  assert.deepEqual(niceTicks(0.013, 0.87), { ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], step: 0.2 });
  assert.deepEqual(niceTicks(0, 30, 6).ticks, [0, 5, 10, 15, 20, 25, 30]);
  assert.deepEqual(niceTicks(-3.2, 7.9, 5).ticks, [-4, -2, 0, 2, 4, 6, 8]);
  assert.deepEqual(niceTicks(0, 1.5e-4, 3), { ticks: [0, 5e-5, 1e-4, 1.5e-4], step: 5e-5 });
  assert.equal(niceStep(0, 1, 5), 0.2);
  assert.equal(niceStep(0, 1000, 4), 200); // 5 intervals of 200 beat 2 of 500
  assert.equal(niceStep(0.31, 0.88, 6), 0.1);
  // Zero-width ranges are widened, around 0 too.
  assert.deepEqual(niceTicks(0, 0, 4).ticks, [-1, -0.5, 0, 0.5, 1]);
  const c = niceTicks(2.3, 2.3, 5).ticks;
  assert.ok(c[0]! < 2.3 && c[c.length - 1]! > 2.3);
  // Random ranges over many magnitudes: covered, evenly spaced, few ticks, short labels.
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < 2000; i++) {
    const scale = 10 ** (rnd() * 16 - 8);
    const a = (rnd() * 2 - 1) * scale;
    const b = a + rnd() * scale * (rnd() < 0.2 ? 1e-3 : 1);
    const target = 2 + Math.floor(rnd() * 8);
    const { ticks, step } = niceTicks(a, b, target);
    const at = `[${a}, ${b}] target ${target}: ${ticks}`;
    assert.ok(isNice(step), `step ${step} ${at}`);
    assert.ok(ticks[0]! <= a && ticks[ticks.length - 1]! >= b, `cover ${at}`);
    assert.ok(ticks.length >= 2 && ticks.length - 1 <= Math.ceil(target * 1.5) + 1, `count ${at}`);
    for (let j = 1; j < ticks.length; j++) assert.ok(Math.abs(ticks[j]! - ticks[j - 1]! - step) <= step * 1e-6, `spacing ${at}`);
    for (const t of ticks) assert.ok(formatTick(t, step).length <= 12, `label ${formatTick(t, step)} ${at}`);
  }
});

test('log ticks and tick labels', () => {
  assert.deepEqual(logTicks(3e-4, 8e-4), [2e-4, 5e-4, 1e-3]);
  assert.deepEqual(logTicks(0.013, 0.87), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]);
  assert.deepEqual(logTicks(1e-7, 1e-3), [1e-7, 1e-6, 1e-5, 1e-4, 1e-3]);
  assert.deepEqual(logTicks(1, 1), [1, 2, 5, 10].slice(0, 2)); // [1, 2]: a decade's first interval
  const wide = logTicks(1e-12, 1e6);
  assert.ok(wide[0]! <= 1e-12 && wide[wide.length - 1]! >= 1e6 && wide.length <= 8, String(wide));
  assert.throws(() => logTicks(0, 1), /positive/);
  assert.equal(formatTick(0.6000000000000001, 0.2), '0.6');
  assert.equal(formatTick(0, 0.2), '0');
  assert.equal(formatTick(1.5e-4, 5e-5), '1.5e-4');
  assert.equal(formatTick(1e-4, 5e-5), '1e-4');
  assert.equal(formatTick(2e6, 1e6), '2e6');
  assert.equal(formatTick(150000, 50000), '150000');
  assert.equal(formatTick(0.9998, 1e-4), '0.9998');
  assert.equal(formatTick(-2.5, 0.5), '-2.5');
  assert.equal(escapeXml(`a<b>&"c"'`), 'a&lt;b&gt;&amp;&quot;c&quot;&apos;');
});

const knnChart: LineChartOptions = {
  title: 'kNN accuracy <teacher> & "student"',
  xLabel: 'epoch',
  yLabel: 'top-1 <acc>',
  series: [
    { name: 'top-1 & co', points: [[1, 0.31], [2, 0.45], [3, NaN], [4, 0.61], [5, Infinity], [6, 0.7], [7, 0.72]] },
    { name: 'top-5', points: [[1, 0.6], [2, 0.75], [4, 0.88]], color: '#d62728' },
  ],
};

test('the SVG is well-formed, titled, labelled, escaped and free of NaN', () => {
  const svg = lineChartSvg(knnChart);
  const tags = assertWellFormed(svg);
  assert.match(svg, /<svg [^>]*width="640" height="400" viewBox="0 0 640 400"/);
  assert.ok(svg.includes('kNN accuracy &lt;teacher&gt; &amp; &quot;student&quot;'));
  assert.ok(svg.includes('top-1 &lt;acc&gt;') && svg.includes('>epoch<'));
  assert.ok(svg.includes('>top-1 &amp; co<') && svg.includes('>top-5<'), 'legend names');
  assert.ok(!svg.includes('<teacher>') && !/NaN|Infinity|undefined/.test(svg));
  // The first series breaks at NaN and Infinity: [1, 2], [4], [6, 7], plus the second series.
  assert.equal(tags.filter((t) => t === 'polyline').length, 3);
  assert.equal(assertInsideFrame(svg), 4 + 2 + 1 + 2 + 3 + 3); // vertices + markers (few points)
  assert.ok(svg.includes('stroke="#d62728"'));
  // y tick labels: nice values covering 0.31 .. 0.88.
  const yLabels = [...svg.matchAll(/text-anchor="end"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(yLabels, ['0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9']);
  // One series: no legend.
  const one = lineChartSvg({ ...knnChart, series: [knnChart.series[0]!] });
  assert.ok(!one.includes('top-1 &amp; co'));
  assertWellFormed(one);
  // Attribute values are escaped too.
  const evil = lineChartSvg({ ...knnChart, series: [{ name: 'x', points: [[0, 1], [1, 2]], color: '"/><script>alert(1)</script>' }] });
  assertWellFormed(evil);
  assert.ok(!evil.includes('<script>'));
});

test('degenerate data: single point, empty series, constants, log scale with zeros, huge series', () => {
  const single = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[3, 0.5]] }] });
  assertWellFormed(single);
  assert.ok(!single.includes('<polyline') && single.includes('<circle'));
  assert.equal(assertInsideFrame(single), 1);

  for (const series of [[], [{ name: 'a', points: [] }, { name: 'b', points: [[1, NaN], [NaN, 2]] as [number, number][] }]]) {
    const svg = lineChartSvg({ title: 'empty', xLabel: 'x', yLabel: 'y', series });
    assertWellFormed(svg);
    assert.ok(svg.includes('no data') && !/NaN|Infinity/.test(svg));
  }

  const flat = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 2.3], [5, 2.3], [5, 2.3]] }] });
  const f = plotFrame(flat);
  const ys = [...flat.matchAll(/points="([^"]*)"/g)].flatMap((m) => m[1]!.split(' ').map((p) => Number(p.split(',')[1])));
  assert.ok(ys.every((y) => Math.abs(y - (f.y + f.h / 2)) < 0.02), 'a constant sits mid-height');
  const zero = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 0], [1, 0]] }] });
  assert.ok(!/NaN|Infinity/.test(zero));

  const lr = Array.from({ length: 101 }, (_, i) => [i, i === 0 ? 0 : 1e-6 + 1.5e-4 * Math.sin((i / 100) * Math.PI)] as [number, number]);
  const log = lineChartSvg({ title: 'lr', xLabel: 'step', yLabel: 'lr', series: [{ name: 'lr', points: lr }], logY: true });
  assertWellFormed(log);
  assert.ok(!/NaN|Infinity/.test(log));
  assertInsideFrame(log);
  // lr from 1e-6 to 1.51e-4 (the 0 is left out): 1-2-5 ticks from 1e-6 to 2e-4.
  const logLabels = [...log.matchAll(/text-anchor="end"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(logLabels, ['1e-6', '2e-6', '5e-6', '1e-5', '2e-5', '5e-5', '1e-4', '2e-4']);

  // 200,000 points: thinned per pixel column, same envelope, bounded size.
  const many = Array.from({ length: 200000 }, (_, i) => [i, Math.sin(i / 5000) + (i % 7 === 0 ? 0.5 : 0)] as [number, number]);
  const big = lineChartSvg({ title: 'loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'loss', points: many }] });
  assert.ok(big.length < 200000, `${big.length} bytes`);
  const fr = plotFrame(big);
  const vy = [...big.matchAll(/points="([^"]*)"/g)].flatMap((m) => m[1]!.split(' ').map((p) => Number(p.split(',')[1])));
  const full = lineChartSvg({ title: 'loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'loss', points: many.filter((_, i) => i % 7 === 0 || i % 5000 === 0) }] });
  const fy = [...full.matchAll(/points="([^"]*)"/g)].flatMap((m) => m[1]!.split(' ').map((p) => Number(p.split(',')[1])));
  assert.ok(Math.abs(Math.min(...vy) - Math.min(...fy)) < 0.5 && Math.max(...vy) <= fr.y + fr.h + 0.01);
  assertInsideFrame(big);
});

test('bad options are clear errors', () => {
  const base = { title: 't', xLabel: 'x', yLabel: 'y' };
  assert.throws(() => lineChartSvg({ ...base, series: [{ name: 'a', points: [[1, 2, 3]] as unknown as [number, number][] }] }), /point 0 is not an \[x, y\] pair/);
  assert.throws(() => lineChartSvg({ ...base, series: [{ name: 'a', points: [] }], width: 0 }), /"width" of lineChartSvg/);
  assert.throws(() => lineChartSvg({ ...base, series: 'a' as unknown as [] }), /array for "series"/);
  assert.throws(() => lineChartSvg({ ...base, title: 3 as unknown as string, series: [] }), /string for "title"/);
});

test('writeChart writes .svg and .png atomically at the requested size', async () => {
  const dir = tmpDir('extrema-plot-');
  try {
    const svgFile = path.join(dir, 'knn.svg');
    await writeChart(svgFile, knnChart);
    assert.equal(fs.readFileSync(svgFile, 'utf8'), lineChartSvg(knnChart));
    const pngFile = path.join(dir, 'nested', 'knn.PNG');
    await writeChart(pngFile, { ...knnChart, width: 800, height: 500 });
    const meta = await sharp(pngFile).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 800, 500]);
    // Not blank: the curves and text put dark and coloured pixels on the white background.
    const { data, info } = await sharp(pngFile).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let dark = 0;
    let red = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      if (data[i]! < 100 && data[i + 1]! < 100 && data[i + 2]! < 100) dark++;
      if (data[i]! > 180 && data[i + 1]! < 80 && data[i + 2]! < 80) red++;
    }
    assert.ok(dark > 500 && red > 50, `dark ${dark}, red ${red}`);
    // Rewriting replaces the file; no temporary files are left behind.
    await writeChart(svgFile, { ...knnChart, title: 'again' });
    assert.ok(fs.readFileSync(svgFile, 'utf8').includes('>again<'));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['knn.svg', 'nested']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'nested')), ['knn.PNG']);
    await assert.rejects(writeChart(path.join(dir, 'knn.jpg'), knnChart), /writes \.svg or \.png files, but ".*knn\.jpg" ends in "\.jpg"/);
    await assert.rejects(writeChart(path.join(dir, 'knn'), knnChart), /has no extension/);
    assert.ok(!fs.existsSync(path.join(dir, 'knn.jpg')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
