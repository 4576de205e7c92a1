// A progress bar with rate and ETA on stderr. On a terminal it redraws one
// line; otherwise (logs, CI) it prints a line every `logEverySeconds`.

export interface ProgressOptions {
  total: number;
  label?: string;
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Non-terminal output: seconds between lines (default 10). */
  logEverySeconds?: number;
}

export class ProgressBar {
  private done = 0;
  private readonly start = performance.now();
  private lastDraw = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private extra = '';

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
  }

  /** Advances by n and sets an optional suffix (e.g. "loss 0.42"). */
  tick(n = 1, extra?: string): void {
    this.done += n;
    if (extra !== undefined) this.extra = extra;
    const now = performance.now();
    const every = this.tty ? 100 : (this.o.logEverySeconds ?? 10) * 1000;
    if (now - this.lastDraw >= every || this.done >= this.o.total) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  finish(message?: string): void {
    if (this.tty) this.stream.write('\n');
    if (message) this.stream.write(`${message}\n`);
  }

  private draw(now: number): void {
    const { total, label = '', unit = 'it' } = this.o;
    const elapsed = (now - this.start) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const frac = total > 0 ? Math.min(this.done / total, 1) : 1;
    const eta = rate > 0 ? (total - this.done) / rate : NaN;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const line = `${label ? `${label} ` : ''}${bar} ${this.done}/${total} ${(frac * 100).toFixed(0)}% ${rate.toFixed(1)} ${unit}/s ETA ${formatSeconds(eta)}${this.extra ? ` ${this.extra}` : ''}`;
    if (this.tty) this.stream.write(`\r${line}\x1b[K`);
    else this.stream.write(`${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
