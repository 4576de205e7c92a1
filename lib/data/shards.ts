// Packed uint8 shards: a dataset decoded and resized once (`extrema pack`),
// stored as raw HWC pixels in large files, so that training reads bytes
// instead of decoding JPEGs every epoch. A pack is a folder:
//   index.json           format, version, size, channels, count, classes, and
//                        per shard: file, items, bytes, crc32
//   shard-00000.u8 ...   items x size x size x channels bytes, nothing else
//   labels.i32           one little-endian int32 per item (labelled packs)
// Shards and labels are written under temporary names and renamed into place,
// and index.json goes last, so a folder with an index is a complete pack.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { writeFileAtomic } from '../io/fs';
import { checkChannels, resizeShorterAndCenterCrop } from './preprocess';
import { grayToRgb } from './image-folder';
import type { ImageDataset } from './dataset';
import { checkIndex, limited } from './items';

export const PACK_INDEX = 'index.json';
const FORMAT = 'extrema-pack';
const VERSION = 1;
/** Open shard files kept at once (ImageNet at 256 px is about a thousand 256 MiB shards). */
const OPEN_SHARDS = 32;
/** Reads of one readInto call queued at once: a few per libuv thread (4 by default) keeps them all busy. */
const READS_IN_FLIGHT = 16;
/** Items joined into one vectored read at most: well under IOV_MAX (1024), and one run never holds up the rest for long. */
const MAX_RUN = 64;

export interface PackShard { file: string; items: number; bytes: number; crc32: number }

export interface PackIndex {
  format: typeof FORMAT;
  version: number;
  size: number;
  channels: 1 | 3;
  count: number;
  classes: string[] | null;
  labelled: boolean;
  /** Where the pack came from (one line) and the items left out when packing, by name. */
  source: string;
  skipped: string[];
  shards: PackShard[];
}

export interface PackOptions {
  /** Bytes per shard, rounded down to whole items (default 256 MiB). */
  shardBytes?: number;
  /** Items decoded at once (default 16). */
  workers?: number;
  /** false: leave out (and report) items that fail to decode; true (default): stop at the first. */
  strict?: boolean;
  onSkip?: (name: string, error: Error) => void;
  onProgress?: (done: number, total: number) => void;
}

/** True when `dir` holds a pack index (a folder being packed has none yet). */
export function isPack(dir: string): boolean {
  return fs.existsSync(path.join(dir, PACK_INDEX));
}

/**
 * Decodes every item of `data` (already at its size and channels) in order
 * and writes them as a pack into `out` (created; must not hold a pack or
 * shard files already). Returns the index written.
 */
export async function packDataset(data: ImageDataset, out: string, options: PackOptions = {}): Promise<PackIndex> {
  const itemBytes = data.size * data.size * data.channels;
  const shardBytes = options.shardBytes ?? 256 * 2 ** 20;
  if (!(Number.isInteger(shardBytes) && shardBytes > 0)) throw new RangeError(`Expected a positive integer for the shard size in bytes but received ${shardBytes}`);
  const perShard = Math.max(1, Math.floor(shardBytes / itemBytes));
  const workers = options.workers ?? 16;
  fs.mkdirSync(out, { recursive: true });
  const existing = fs.readdirSync(out).filter((f) => f === PACK_INDEX || /^shard-\d+\.u8$/.test(f) || f === 'labels.i32');
  if (existing.length > 0) throw new Error(`Expected an empty or new folder for the pack but ${out} already holds ${existing.slice(0, 3).join(', ')}; remove them or choose another --out`);
  const shards: PackShard[] = [];
  const labels: number[] = [];
  const skipped: string[] = [];
  const buffer = Buffer.allocUnsafe(Math.min(perShard, data.count) * itemBytes);
  let filled = 0;
  const flush = () => {
    if (filled === 0) return;
    const file = `shard-${String(shards.length).padStart(5, '0')}.u8`;
    const bytes = buffer.subarray(0, filled * itemBytes);
    writeFileAtomic(path.join(out, file), bytes);
    shards.push({ file, items: filled, bytes: bytes.length, crc32: crc32(bytes) });
    filled = 0;
  };
  // Reads run `workers` ahead of the writer; items are written in dataset order.
  const inFlight = new Map<number, Promise<Uint8Array | Error>>();
  const start = (i: number) => inFlight.set(i, data.read(i).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
  for (let i = 0; i < Math.min(workers, data.count); i++) start(i);
  try {
    await packItems();
  } catch (e) {
    // a pack that stopped leaves nothing behind: the folder can be used again as it was
    for (const s of shards) fs.rmSync(path.join(out, s.file), { force: true });
    throw e;
  }
  async function packItems(): Promise<void> {
    for (let i = 0; i < data.count; i++) {
      const item = await inFlight.get(i)!;
      inFlight.delete(i);
      if (i + workers < data.count) start(i + workers);
      if (item instanceof Error) {
        if (options.strict ?? true) {
          await Promise.allSettled(inFlight.values());
          throw new Error(`Stopped packing at item ${i} of ${data.count} (${data.name(i)}): ${item.message} (pass --skip-bad to leave such images out)`, { cause: item });
        }
        skipped.push(data.name(i));
        options.onSkip?.(data.name(i), item);
      } else {
        if (item.length !== itemBytes) throw new Error(`Expected ${itemBytes} bytes for item ${data.name(i)} but the reader returned ${item.length}`);
        buffer.set(item, filled * itemBytes);
        filled++;
        if (data.labels !== null) labels.push(data.labels[i] as number);
        if (filled === perShard) flush(); // written synchronously: the buffer is free again
      }
      options.onProgress?.(i + 1, data.count);
    }
    flush();
  }
  const count = shards.reduce((s, x) => s + x.items, 0);
  if (count === 0) throw new Error(`Nothing to pack: every one of the ${data.count} items of ${data.path} failed to decode`);
  if (data.labels !== null) writeFileAtomic(path.join(out, 'labels.i32'), new Uint8Array(Int32Array.from(labels).buffer));
  const index: PackIndex = {
    format: FORMAT, version: VERSION, size: data.size, channels: data.channels, count,
    classes: data.classes === null ? null : [...data.classes], labelled: data.labels !== null,
    source: data.describe, skipped, shards,
  };
  writeFileAtomic(path.join(out, PACK_INDEX), Buffer.from(JSON.stringify(index, null, 1)));
  return index;
}

/** Reads and checks a pack's index against the files beside it (sizes, not contents: see verifyPack). */
export function readPackIndex(dir: string): PackIndex {
  const file = path.join(dir, PACK_INDEX);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`Expected a pack index at ${file} but it cannot be read as JSON: ${(e as Error).message}`, { cause: e });
  }
  const bad = (what: string) => new Error(`Corrupt pack index ${file}: ${what}`);
  const x = raw as Partial<PackIndex>;
  if (x === null || typeof x !== 'object' || x.format !== FORMAT) throw bad(`expected format "${FORMAT}"`);
  if (x.version !== VERSION) throw bad(`version ${String(x.version)} is not supported (this build reads version ${VERSION})`);
  const posInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
  if (!posInt(x.size) || (x.size as number) > 65_536) throw bad(`size ${String(x.size)} is not a positive integer up to 65536`);
  if (x.channels !== 1 && x.channels !== 3) throw bad(`channels ${String(x.channels)} is not 1 or 3`);
  if (!posInt(x.count)) throw bad(`count ${String(x.count)} is not a positive integer`);
  if (!Array.isArray(x.shards) || x.shards.length === 0) throw bad('no shards listed');
  if (typeof x.labelled !== 'boolean') throw bad('"labelled" is not a boolean');
  if (x.classes !== null && !(Array.isArray(x.classes) && x.classes.every((c) => typeof c === 'string'))) throw bad('"classes" is not null or a list of names');
  const itemBytes = x.size! * x.size! * x.channels;
  let total = 0;
  for (const s of x.shards) {
    if (s === null || typeof s !== 'object' || typeof s.file !== 'string' || !/^shard-\d+\.u8$/.test(s.file)) throw bad(`shard entry ${JSON.stringify(s)} has no valid file name`);
    if (!posInt(s.items) || s.bytes !== s.items * itemBytes) throw bad(`shard ${s.file}: ${String(s.items)} items of ${itemBytes} bytes do not make ${String(s.bytes)} bytes`);
    const st = statOrNull(path.join(dir, s.file));
    if (st === null) throw new Error(`Pack ${dir} is missing its shard ${s.file}`);
    if (st.size !== s.bytes) throw new Error(`Pack shard ${path.join(dir, s.file)} has ${st.size} bytes but the index says ${s.bytes} (truncated or replaced)`);
    total += s.items;
  }
  if (total !== x.count) throw bad(`the shards hold ${total} items but count is ${x.count}`);
  if (x.labelled) {
    const st = statOrNull(path.join(dir, 'labels.i32'));
    if (st === null || st.size !== x.count * 4) throw new Error(`Pack ${dir}: labels.i32 should hold ${x.count} int32 labels (${x.count * 4} bytes) but ${st === null ? 'is missing' : `has ${st.size} bytes`}`);
  }
  return { ...(x as PackIndex), skipped: Array.isArray(x.skipped) ? x.skipped : [], source: String(x.source ?? '') };
}

/** Checks every shard's CRC-32 against the index (reads the whole pack); returns the shards that differ. */
export function verifyPack(dir: string): string[] {
  const index = readPackIndex(dir);
  return index.shards.filter((s) => crc32(fs.readFileSync(path.join(dir, s.file))) !== s.crc32).map((s) => s.file);
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/**
 * A pack as a dataset: items are read with one positioned read each (no
 * decoding), and resized or widened to 3 channels only when asked for a
 * size or channel count other than the pack's. readInto reads a batch
 * straight into the caller's buffer.
 */
export function openPack(dir: string, o: { size: number; channels?: 1 | 3; limit?: number }): ImageDataset {
  const index = readPackIndex(dir);
  const count = limited(index.count, o.limit);
  const channels = checkChannels(o.channels ?? index.channels);
  if (channels === 1 && index.channels === 3) throw new Error(`Pack ${dir} holds 3-channel images; it cannot be read as 1 channel (pack it again with --channels 1)`);
  const itemBytes = index.size * index.size * index.channels;
  const firstItem: number[] = [];
  let sum = 0;
  for (const s of index.shards) {
    firstItem.push(sum);
    sum += s.items;
  }
  let labels: Int32Array | null = null;
  if (index.labelled) {
    const buf = fs.readFileSync(path.join(dir, 'labels.i32'));
    labels = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + count * 4));
    if (index.classes !== null) {
      const bad = labels.findIndex((l) => l < 0 || l >= index.classes!.length);
      if (bad >= 0) throw new Error(`Pack ${dir}: label ${labels[bad]} of item ${bad} is outside its ${index.classes.length} classes`);
    }
  }
  const files = new ShardFiles(index.shards.map((x) => path.join(dir, x.file)));
  const locate = (i: number): [number, number] => {
    let lo = 0;
    let hi = firstItem.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((firstItem[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return [lo, i - (firstItem[lo] as number)];
  };
  const name = (i: number) => `${dir}#${i}`;
  const dataset: ImageDataset = {
    kind: 'pack', path: dir, count, size: o.size, channels, labels, classes: index.classes, files: null,
    describe: `pack ${dir}: ${count} images, ${index.size} x ${index.size}, ${index.channels} channel${index.channels === 1 ? '' : 's'}${channels !== index.channels ? ' (read as 3)' : ''}${o.size !== index.size ? ` (read at ${o.size})` : ''}${labels ? ', labelled' : ''}`,
    async read(i) {
      checkIndex(i, count);
      const [shard, k] = locate(i);
      const bytes = new Uint8Array(itemBytes);
      const bytesRead = await files.read(shard, [bytes], k * itemBytes);
      if (bytesRead !== itemBytes) throw new Error(`Pack shard ${index.shards[shard]!.file} ended early at item ${name(i)} (read ${bytesRead} of ${itemBytes} bytes)`);
      const wide = channels === index.channels ? bytes : grayToRgb(bytes);
      return o.size === index.size ? wide : resizeShorterAndCenterCrop(wide, index.size, index.size, channels, o.size);
    },
    async readInto(indices, into) {
      const outBytes = o.size * o.size * channels;
      if (into.length !== indices.length * outBytes) throw new RangeError(`Expected ${indices.length} x ${outBytes} bytes to read ${indices.length} items into but received ${into.length}`);
      for (const i of indices) checkIndex(i, count);
      if (outBytes !== itemBytes || channels !== index.channels) {
        // converted on read: the stored bytes are not the item's, so nothing can land in place
        await eachInParallel(indices.map((i, slot) => [i, slot] as const), READS_IN_FLIGHT, async ([i, slot]) => into.set(await dataset.read(i), slot * outBytes));
        return;
      }
      // Slots in file order; items next to each other in a shard become one
      // vectored read that scatters straight into their slots (an eval pass
      // reads a whole batch in a few reads; a shuffled one mostly item by item).
      const where = indices.map((i, slot) => {
        const [shard, k] = locate(i);
        return { shard, k, slot };
      });
      where.sort((a, b) => a.shard - b.shard || a.k - b.k);
      const runs: (typeof where)[] = [];
      for (const w of where) {
        const run = runs.at(-1);
        const last = run?.at(-1);
        if (run !== undefined && last !== undefined && last.shard === w.shard && last.k + 1 === w.k && run.length < MAX_RUN) run.push(w);
        else runs.push([w]);
      }
      await eachInParallel(runs, READS_IN_FLIGHT, async (run) => {
        const first = run[0]!;
        const views = run.map((w) => into.subarray(w.slot * itemBytes, (w.slot + 1) * itemBytes));
        const bytesRead = await files.read(first.shard, views, first.k * itemBytes);
        if (bytesRead !== run.length * itemBytes) {
          const short = run[Math.floor(bytesRead / itemBytes)]!;
          throw new Error(`Pack shard ${index.shards[first.shard]!.file} ended early at item ${name(indices[short.slot]!)} (read ${bytesRead % itemBytes} of ${itemBytes} bytes)`);
        }
      });
    },
    name,
  };
  shardFilesOf.register(dataset, files);
  return dataset;
}

/**
 * Shard files opened on first use and kept open, at most OPEN_SHARDS at a
 * time (least recently used closed first, never one with a read in flight).
 * Raw descriptors: closed on eviction, or when the dataset is collected.
 */
class ShardFiles {
  private readonly open = new Map<number, { fd: number; busy: number }>(); // insertion order: least recently used first

  constructor(private readonly paths: readonly string[]) {}

  /**
   * Fills `views` in turn from the shard's bytes at `position` on (one
   * vectored read, repeated after a short one); returns the bytes read, fewer
   * than the views hold only where the file ends.
   */
  async read(shard: number, views: readonly Uint8Array[], position: number): Promise<number> {
    let entry = this.open.get(shard);
    if (entry === undefined) {
      entry = { fd: fs.openSync(this.paths[shard]!, 'r'), busy: 0 };
      this.evict();
    } else {
      this.open.delete(shard);
    }
    this.open.set(shard, entry);
    entry.busy++;
    const fd = entry.fd;
    try {
      let done = 0;
      let k = 0; // the first view not yet full
      let filled = 0; // bytes of views[k] already read
      while (k < views.length) {
        const pending = k === 0 && filled === 0 ? views : [views[k]!.subarray(filled), ...views.slice(k + 1)];
        const n = await new Promise<number>((resolve, reject) => fs.readv(fd, pending, position + done, (e, b) => (e ? reject(e) : resolve(b))));
        if (n === 0) break;
        done += n;
        filled += n;
        while (k < views.length && filled >= views[k]!.length) filled -= views[k++]!.length;
      }
      return done;
    } finally {
      entry.busy--;
    }
  }

  private evict(): void {
    for (const [shard, e] of this.open) {
      if (this.open.size < OPEN_SHARDS) return;
      if (e.busy > 0) continue;
      fs.closeSync(e.fd);
      this.open.delete(shard);
    }
  }

  closeAll(): void {
    for (const e of this.open.values()) if (e.busy === 0) fs.closeSync(e.fd);
    this.open.clear();
  }
}

const shardFilesOf = new FinalizationRegistry<ShardFiles>((files) => files.closeAll());

/**
 * Runs `job` on every item, at most `width` at once. On a failure no new job
 * starts, and the first error is thrown only once every started job has
 * settled: a caller that reuses the target buffer must know no read still
 * writes into it.
 */
async function eachInParallel<T>(items: readonly T[], width: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      try {
        await job(items[next++]!);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
