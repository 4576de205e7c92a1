// Temporary directories for tests, swept when the test process exits: many
// tests keep theirs to the end (or fail before their own cleanup), and a
// suite run should not leave dozens behind in the OS temp dir.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made = new Set<string>();
let sweepRegistered = false;

function sweep(): void {
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // still held by another process: leave it rather than fail the exit
    }
  }
}

/** A fresh directory under the OS temp dir, removed when this process exits. */
export function tmpDir(prefix = 'extrema-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  if (!sweepRegistered) {
    sweepRegistered = true;
    process.on('exit', sweep);
  }
  return dir;
}
