// Line charts as SVG (no dependencies) and PNG (the SVG rendered by sharp):
// the loss, learning-rate and kNN-accuracy curves of a training run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/fs';

export type Point = readonly [number, number];

export interface ChartSeries {
  name: string;
  /** [x, y] pairs; a non-finite coordinate (or y <= 0 on a log axis) breaks the line there. */
  points: readonly Point[];
  /** Any SVG colour; by default the next of ten distinct colours. */
  color?: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly ChartSeries[];
  /** Pixels (default 640 x 400; a PNG has exactly this size). */
  width?: number;
  height?: number;
  /** Logarithmic y axis (ticks at 1, 2, 5 x 10^k, or whole decades over wide ranges). */
  logY?: boolean;
}

/** The Tableau 10 palette (as matplotlib's default cycle). */
export const CHART_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'] as const;

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const TICK_FONT = 11;
const LABEL_FONT = 13;
const TITLE_FONT = 15;
const LEGEND_FONT = 12;
/** Average advance of a character, in em, to size boxes without measuring text. */
const CHAR_EM = 0.62;

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

// ---- ticks ---------------------------------------------------------------

/** Rounds away the binary noise of i * step (0.6000000000000001 -> 0.6). */
function clean(v: number): number {
  const r = Number(v.toPrecision(12));
  return r === 0 ? 0 : r; // no -0
}

/** Intervals of width `step` needed to cover [min, max] with multiples of step. */
function intervals(min: number, max: number, step: number): number {
  return Math.ceil(max / step - 1e-9) - Math.floor(min / step + 1e-9);
}

/**
 * The step of the form 1, 2 or 5 x 10^k that covers [min, max] in the number
 * of intervals closest to `target` (ties go to the larger step).
 */
export function niceStep(min: number, max: number, target = 5): number {
  const range = max - min;
  if (!(range > 0) || !Number.isFinite(range)) throw new RangeError(`niceStep needs a non-empty finite range but received [${min}, ${max}]`);
  const goal = Math.max(1, target);
  const e = Math.floor(Math.log10(range / goal));
  let best = NaN;
  let bestMiss = Infinity;
  for (let k = e + 1; k >= e - 1; k--) {
    for (const m of [5, 2, 1]) {
      const step = clean(m * 10 ** k);
      const miss = Math.abs(intervals(min, max, step) - goal);
      if (miss < bestMiss) {
        best = step;
        bestMiss = miss;
      }
    }
  }
  return best;
}

/**
 * Evenly spaced "nice" ticks (multiples of a 1/2/5 x 10^k step, about
 * `target` intervals) whose first and last values enclose [min, max]. A
 * zero-width range is widened around its value (10% of it, or +-1 around 0).
 */
export function niceTicks(min: number, max: number, target = 5): { ticks: number[]; step: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max)) throw new RangeError(`niceTicks needs finite bounds but received [${min}, ${max}]`);
  if (min > max) [min, max] = [max, min];
  const scale = Math.max(Math.abs(min), Math.abs(max));
  if (max - min <= scale * 1e-12) {
    const pad = scale === 0 ? 1 : scale * 0.1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(min, max, target);
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(clean(i * step));
  if (ticks.length < 2) ticks.push(clean((last + 1) * step));
  return { ticks, step };
}

/**
 * Ticks of a log axis enclosing [min, max] (both > 0): 1, 2, 5 x 10^k over up
 * to three decades, whole decades beyond (every n-th decade over very wide ranges).
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) {
    throw new RangeError(`logTicks needs positive finite bounds but received [${min}, ${max}]`);
  }
  if (min > max) [min, max] = [max, min];
  const e0 = Math.floor(Math.log10(min) + 1e-9);
  let e1 = Math.ceil(Math.log10(max) - 1e-9);
  if (e1 <= e0) e1 = e0 + 1;
  const decades = e1 - e0;
  if (decades > 3) {
    const stride = Math.ceil(decades / 6);
    const ticks: number[] = [];
    for (let e = e0; e < e1 + stride; e += stride) {
      ticks.push(clean(10 ** e));
      if (e >= e1) break;
    }
    return ticks;
  }
  const candidates: number[] = [];
  for (let e = e0; e <= e1; e++) for (const m of [1, 2, 5]) candidates.push(clean(m * 10 ** e));
  let lo = 0;
  while (lo + 1 < candidates.length && candidates[lo + 1]! <= min * (1 + 1e-9)) lo++;
  let hi = candidates.length - 1;
  while (hi - 1 >= 0 && candidates[hi - 1]! >= max * (1 - 1e-9)) hi--;
  if (hi <= lo) hi = lo + 1;
  return candidates.slice(lo, hi + 1);
}

function trimMantissa(s: string): string {
  // "1.50e-4" -> "1.5e-4", "2.00e+6" -> "2e6"
  const [m, e] = s.split('e') as [string, string];
  const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
  return `${mant}e${Number(e)}`;
}

/** A tick label for v on an axis whose ticks are `step` apart (exponents for tiny or huge values). */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || (a < 1e-2 && step < 1e-3)) {
    const digits = Math.max(0, Math.floor(Math.log10(a) + 1e-9) - Math.floor(Math.log10(step) + 1e-9));
    return trimMantissa(v.toExponential(Math.min(digits, 15)));
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(decimals, 20));
}

/** A label for a tick of a log axis: 0.01, 0.5, 20, 1e-4, 2e6. */
function formatLogTick(v: number): string {
  if (v >= 1e-3 && v < 1e5) return String(clean(v));
  return trimMantissa(v.toExponential(0));
}

// ---- the chart -----------------------------------------------------------

function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}

function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * CHAR_EM;
}

function checkOptions(o: LineChartOptions): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('lineChartSvg needs an options object');
  for (const key of ['title', 'xLabel', 'yLabel'] as const) {
    if (typeof o[key] !== 'string') throw new TypeError(`Expected a string for "${key}" of lineChartSvg but received ${typeof o[key]}`);
  }
  if (!Array.isArray(o.series)) throw new TypeError('Expected an array for "series" of lineChartSvg');
  o.series.forEach((s, i) => {
    if (typeof s !== 'object' || s === null || typeof s.name !== 'string') throw new TypeError(`series[${i}] of lineChartSvg needs a string "name"`);
    if (!Array.isArray(s.points)) throw new TypeError(`series[${i}] ("${s.name}") of lineChartSvg needs an array of [x, y] "points"`);
    if (s.color !== undefined && typeof s.color !== 'string') throw new TypeError(`series[${i}] ("${s.name}") of lineChartSvg: "color" must be a string`);
    (s.points as readonly unknown[]).forEach((p: unknown, j: number) => {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') {
        throw new TypeError(`series[${i}] ("${s.name}") of lineChartSvg: point ${j} is not an [x, y] pair of numbers`);
      }
    });
  });
  for (const key of ['width', 'height'] as const) {
    const v = o[key];
    if (v !== undefined && !(Number.isFinite(v) && v >= 100 && v <= 20000)) {
      throw new RangeError(`Expected "${key}" of lineChartSvg in [100, 20000] pixels but received ${v}`);
    }
  }
}

/** Splits a series at unusable points into runs of consecutive usable ones. */
function segments(points: readonly Point[], logY: boolean): Point[][] {
  const out: Point[][] = [];
  let run: Point[] = [];
  for (const p of points) {
    const ok = Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0);
    if (ok) run.push(p);
    else if (run.length > 0) {
      out.push(run);
      run = [];
    }
  }
  if (run.length > 0) out.push(run);
  return out;
}

/**
 * Thins a run with non-decreasing x to at most four points a pixel column
 * (first, lowest, highest, last, in order), which draws the same picture.
 */
function decimate(px: [number, number][], plotWidth: number): [number, number][] {
  if (px.length <= 4 * plotWidth) return px;
  for (let i = 1; i < px.length; i++) if (px[i]![0] < px[i - 1]![0]) return px;
  const out: [number, number][] = [];
  let i = 0;
  while (i < px.length) {
    const column = Math.floor(px[i]![0]);
    let j = i;
    let lo = i;
    let hi = i;
    while (j < px.length && Math.floor(px[j]![0]) === column) {
      if (px[j]![1] < px[lo]![1]) lo = j;
      if (px[j]![1] > px[hi]![1]) hi = j;
      j++;
    }
    const keep = [...new Set([i, lo, hi, j - 1])].sort((a, b) => a - b);
    for (const k of keep) out.push(px[k]!);
    i = j;
  }
  return out;
}

/**
 * A line chart as a standalone SVG document: title, axes with nice ticks and
 * light grid lines, axis labels, one polyline per series (broken at
 * non-finite points; markers when a series has few points), and a legend when
 * there is more than one series, placed in the plot corner with the least data.
 */
export function lineChartSvg(options: LineChartOptions): string {
  checkOptions(options);
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const logY = options.logY === true;
  const series = options.series.map((s, i) => ({
    name: s.name,
    color: s.color ?? CHART_COLORS[i % CHART_COLORS.length]!,
    runs: segments(s.points, logY),
  }));

  // Data ranges over every usable point.
  let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
  for (const s of series) for (const run of s.runs) for (const [x, y] of run) {
    if (x < xMin) xMin = x;
    if (x > xMax) xMax = x;
    if (y < yMin) yMin = y;
    if (y > yMax) yMax = y;
  }
  const empty = xMin > xMax;
  if (empty) [xMin, xMax, yMin, yMax] = logY ? [0, 1, 1, 10] : [0, 1, 0, 1];

  // Layout: margins from the text they hold.
  const top = options.title ? 40 : 16;
  const bottom = 52;
  const plotHeightGuess = height - top - bottom;
  const yTarget = Math.max(2, Math.round(plotHeightGuess / 55));
  let yTicks: number[];
  let yLabels: string[];
  if (logY) {
    yTicks = logTicks(yMin, yMax);
    yLabels = yTicks.map(formatLogTick);
  } else {
    const t = niceTicks(yMin, yMax, yTarget);
    yTicks = t.ticks;
    yLabels = yTicks.map((v) => formatTick(v, t.step));
  }
  const yLabelWidth = Math.max(...yLabels.map((l) => textWidth(l, TICK_FONT)));
  const left = Math.ceil(8 + LABEL_FONT + 10 + yLabelWidth + 8);
  // As many x ticks as fit about 90 px apart, fewer if the labels would touch.
  let xTarget = Math.max(2, Math.round((width - left - 24) / 90));
  let xt = niceTicks(xMin, xMax, xTarget);
  let xLabels = xt.ticks.map((v) => formatTick(v, xt.step));
  while (xTarget > 1 && Math.max(...xLabels.map((l) => textWidth(l, TICK_FONT))) + 12 > (width - left - 24) / (xt.ticks.length - 1)) {
    xTarget--;
    xt = niceTicks(xMin, xMax, xTarget);
    xLabels = xt.ticks.map((v) => formatTick(v, xt.step));
  }
  const xTicks = xt.ticks;
  const right = Math.ceil(Math.max(20, textWidth(xLabels[xLabels.length - 1]!, TICK_FONT) / 2 + 6));
  const plotW = width - left - right;
  const plotH = height - top - bottom;

  const x0 = xTicks[0]!, x1 = xTicks[xTicks.length - 1]!;
  const y0 = yTicks[0]!, y1 = yTicks[yTicks.length - 1]!;
  const fy = logY ? Math.log10 : (v: number) => v;
  const fy0 = fy(y0), fy1 = fy(y1);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => top + plotH - ((fy(y) - fy0) / (fy1 - fy0)) * plotH;

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`);
  out.push(`<title>${escapeXml(options.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title) {
    out.push(`<text x="${num(width / 2)}" y="26" text-anchor="middle" font-size="${TITLE_FONT}" font-weight="bold" fill="#222222">${escapeXml(options.title)}</text>`);
  }

  // Grid and ticks.
  const grid: string[] = [];
  const labels: string[] = [];
  yTicks.forEach((v, i) => {
    const y = num(sy(v));
    grid.push(`<line x1="${left}" y1="${y}" x2="${num(left + plotW)}" y2="${y}"/>`);
    labels.push(`<text x="${left - 7}" y="${y}" text-anchor="end" dominant-baseline="middle" dy="0.05em">${escapeXml(yLabels[i]!)}</text>`);
  });
  xTicks.forEach((v, i) => {
    const x = num(sx(v));
    grid.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${num(top + plotH)}"/>`);
    labels.push(`<text x="${x}" y="${num(top + plotH + 18)}" text-anchor="middle">${escapeXml(xLabels[i]!)}</text>`);
  });
  out.push(`<g stroke="#e6e6e6" stroke-width="1">${grid.join('')}</g>`);
  const ticks: string[] = [];
  for (const v of yTicks) ticks.push(`<line x1="${left - 4}" y1="${num(sy(v))}" x2="${left}" y2="${num(sy(v))}"/>`);
  for (const v of xTicks) ticks.push(`<line x1="${num(sx(v))}" y1="${num(top + plotH)}" x2="${num(sx(v))}" y2="${num(top + plotH + 4)}"/>`);
  out.push(`<g stroke="#444444" stroke-width="1">${ticks.join('')}<rect x="${left}" y="${top}" width="${num(plotW)}" height="${num(plotH)}" fill="none"/></g>`);
  out.push(`<g font-size="${TICK_FONT}" fill="#444444">${labels.join('')}</g>`);

  // Axis labels.
  out.push(`<text x="${num(left + plotW / 2)}" y="${height - 10}" text-anchor="middle" font-size="${LABEL_FONT}" fill="#222222">${escapeXml(options.xLabel)}</text>`);
  const yMid = num(top + plotH / 2);
  out.push(`<text x="${8 + LABEL_FONT}" y="${yMid}" transform="rotate(-90 ${8 + LABEL_FONT} ${yMid})" text-anchor="middle" font-size="${LABEL_FONT}" fill="#222222">${escapeXml(options.yLabel)}</text>`);

  // Curves.
  const drawn: [number, number][] = []; // pixel samples, to place the legend
  for (const s of series) {
    const count = s.runs.reduce((n, r) => n + r.length, 0);
    const markers = count <= 40;
    const color = escapeXml(s.color);
    const parts: string[] = [];
    for (const run of s.runs) {
      const px = decimate(run.map(([x, y]) => [sx(x), sy(y)] as [number, number]), plotW);
      for (let i = 0; i < px.length; i++) {
        drawn.push(px[i]!);
        if (i > 0) {
          const [ax, ay] = px[i - 1]!;
          const [bx, by] = px[i]!;
          const n = Math.min(20, Math.floor(Math.hypot(bx - ax, by - ay) / 10));
          for (let j = 1; j < n; j++) drawn.push([ax + ((bx - ax) * j) / n, ay + ((by - ay) * j) / n]);
        }
      }
      if (px.length > 1) {
        parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round" points="${px.map(([x, y]) => `${num(x)},${num(y)}`).join(' ')}"/>`);
      }
      if (markers || px.length === 1) {
        for (const [x, y] of px) parts.push(`<circle cx="${num(x)}" cy="${num(y)}" r="2.6" fill="${color}"/>`);
      }
    }
    out.push(`<g>${parts.join('')}</g>`);
  }
  if (empty) {
    out.push(`<text x="${num(left + plotW / 2)}" y="${num(top + plotH / 2)}" text-anchor="middle" dominant-baseline="middle" font-size="${LABEL_FONT}" fill="#999999">no data</text>`);
  }

  // Legend.
  if (series.length > 1) {
    const names = series.map((s) => (s.name.length > 48 ? `${s.name.slice(0, 47)}…` : s.name));
    const rowH = 18;
    const boxW = Math.ceil(10 + 22 + 6 + Math.max(...names.map((n) => textWidth(n, LEGEND_FONT))) + 10);
    const boxH = 8 + rowH * names.length;
    const inset = 8;
    const corners: [number, number][] = [
      [left + plotW - inset - boxW, top + inset],
      [left + inset, top + inset],
      [left + plotW - inset - boxW, top + plotH - inset - boxH],
      [left + inset, top + plotH - inset - boxH],
    ];
    let best = corners[0]!;
    let bestCount = Infinity;
    for (const c of corners) {
      let n = 0;
      for (const [x, y] of drawn) if (x >= c[0] && x <= c[0] + boxW && y >= c[1] && y <= c[1] + boxH) n++;
      if (n < bestCount) {
        best = c;
        bestCount = n;
      }
    }
    const [bx, by] = best;
    const rows = names.map((n, i) => {
      const cy = by + 4 + rowH * i + rowH / 2;
      return `<line x1="${num(bx + 10)}" y1="${num(cy)}" x2="${num(bx + 32)}" y2="${num(cy)}" stroke="${escapeXml(series[i]!.color)}" stroke-width="2.5" stroke-linecap="round"/>`
        + `<text x="${num(bx + 38)}" y="${num(cy)}" dominant-baseline="middle" dy="0.05em">${escapeXml(n)}</text>`;
    });
    out.push(`<g font-size="${LEGEND_FONT}" fill="#222222"><rect x="${num(bx)}" y="${num(by)}" width="${boxW}" height="${boxH}" rx="3" fill="#ffffff" fill-opacity="0.88" stroke="#cccccc"/>${rows.join('')}</g>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Writes a chart to `file`: .svg as the SVG text, .png rendered by sharp at
 * width x height pixels. The file is replaced atomically (temporary file in
 * the same folder, then rename); the folder is created if missing.
 */
export async function writeChart(file: string, options: LineChartOptions): Promise<void> {
  if (typeof file !== 'string' || file === '') throw new TypeError('writeChart needs a file name');
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') {
    throw new RangeError(`writeChart writes .svg or .png files, but "${file}" ${ext ? `ends in "${ext}"` : 'has no extension'}`);
  }
  const svg = lineChartSvg(options);
  const data = ext === '.svg' ? Buffer.from(svg, 'utf8') : await sharp(Buffer.from(svg, 'utf8')).png().toBuffer();
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileAtomic(file, data);
}
