// Files that are written whole or not at all. writeFileAtomic writes to a
// temporary file beside the target, syncs it and renames it into place, so a
// crash never leaves a half-written file under the real name. A crash (kill -9,
// power loss) between creating the temporary file and the rename leaves the
// temporary file behind instead; removeStaleTempFiles clears those when a
// program starts over in the same folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

/** `.<name>.<writer pid>.<ms since epoch>.tmp`: the writer and its start time are recoverable from the name. */
const TEMP_NAME = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;

function tempFileFor(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
}

/** Writes atomically: temp file in the same folder, fsync, rename, fsync of the folder. */
export function writeFileAtomic(file: string, data: Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = tempFileFor(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    let written = 0;
    while (written < data.length) written += fs.writeSync(fd, data, written, data.length - written);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  // Make the rename itself durable (directories cannot be opened on Windows).
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // best effort
  }
}

export interface RemoveStaleTempFilesOptions {
  /**
   * A temporary file not modified for this long is stale whoever holds its
   * pid now (default 24 hours; Infinity turns the rule off). writeFileAtomic
   * writes without pausing and renames right after its fsync, so a live
   * writer's file is always recent; an old one whose pid is alive belongs to
   * an unrelated process that was given the same pid (containers reuse small
   * pids on every restart).
   */
  maxAgeMs?: number;
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes the temporary files that writeFileAtomic left in `dir` when its
 * process died mid-write, and returns their names (not paths), sorted. A
 * temporary file is stale when its writer's pid no longer exists, when the
 * pid is this process's but the file predates this process (the pid was
 * reused after a restart), or when it has not been modified for
 * `maxAgeMs`. Files of live writers, and every file not named like
 * writeFileAtomic's temporary files, are left alone. A missing `dir` has
 * nothing to remove.
 */
export function removeStaleTempFiles(dir: string, options: RemoveStaleTempFilesOptions = {}): string[] {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`Expected a folder path for "dir" of removeStaleTempFiles but received ${dir === '' ? 'an empty string' : typeof dir}`);
  const maxAgeMs = options.maxAgeMs ?? 24 * 60 * 60 * 1000;
  if (typeof maxAgeMs !== 'number' || Number.isNaN(maxAgeMs) || maxAgeMs < 0) {
    throw new TypeError(`Expected a non-negative number of milliseconds for "maxAgeMs" of removeStaleTempFiles but received ${String(maxAgeMs)}`);
  }
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const now = Date.now();
  const removed: string[] = [];
  for (const name of names.sort()) {
    const m = TEMP_NAME.exec(name);
    if (m === null) continue;
    const pid = Number(m[2]);
    const createdAt = Number(m[3]);
    if (!(pid > 0 && pid < 2 ** 31)) continue; // no process could have written it: not one of ours
    const file = path.join(dir, name);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(file);
    } catch {
      continue; // removed meanwhile
    }
    if (!stat.isFile()) continue;
    const stale = (pid === process.pid ? createdAt < performance.timeOrigin : processIsGone(pid)) || now - stat.mtimeMs > maxAgeMs;
    if (!stale) continue;
    fs.rmSync(file, { force: true });
    removed.push(name);
  }
  return removed;
}
