// The run's JSONL log: one JSON object a line, appended as training goes.
// A resumed run first drops the lines written after its checkpoint, so the
// log always tells the story of the weights in the run folder.
import * as fs from 'node:fs';

export type LogRecord = { kind: 'step' | 'epoch' | 'knn' | 'event'; iteration: number } & Record<string, unknown>;

export class RunLog {
  private fd: number;
  private readonly discard: boolean;

  /** `discard`: a log that writes nothing (the ranks other than 0 of a distributed run). */
  constructor(readonly file: string, resumeAt: number | null, options: { discard?: boolean } = {}) {
    this.discard = options.discard ?? false;
    if (this.discard) {
      this.fd = -1;
      return;
    }
    if (resumeAt === null) {
      this.fd = fs.openSync(file, 'w');
      return;
    }
    // Everything up to the checkpoint's iteration was written before it was saved.
    const kept = RunLog.read(file).filter((r) => r.iteration <= resumeAt);
    fs.writeFileSync(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    this.fd = fs.openSync(file, 'a');
  }

  write(record: LogRecord): void {
    if (this.discard) return;
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Every record of a log file (an unreadable last line, from a crash mid-write, is dropped). */
  static read(file: string): LogRecord[] {
    if (!fs.existsSync(file)) return [];
    const out: LogRecord[] = [];
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        // a torn last line
      }
    }
    return out;
  }
}
