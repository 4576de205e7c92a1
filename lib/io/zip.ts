// A minimal, validating zip reader: enough for the archives torch.save writes
// (stored entries, 64-byte aligned, ZIP64 once they grow past 4 GiB) and for
// deflated copies of them. The central directory is the source of truth; each
// local header is checked against it before its data is read. Entries are read
// on demand from an open file descriptor, so a large archive is never held in
// memory as a whole.
//
// Every structural problem (truncation, offsets outside the file, bad
// signatures, sizes that disagree, duplicate names, overlapping entries,
// encryption, unsupported compression, CRC mismatch) raises a ZipError naming
// the archive and what is wrong.
//
// Work and memory stay proportional to the archive's size: the central
// directory, every stored entry and every compressed stream lie inside the
// file (checked before reading), no two entries may share bytes (the trick
// that lets a small zip bomb inflate one stream many times), and inflating is
// capped in total at maxInflateRatio times the archive's size (at least
// 64 MiB), checked against each entry's declared size before inflating it. CRC-32 checking uses zlib.crc32 (Node >= 20.15, several GB/s) on
// every entry read unless the caller opts out; on older Nodes a table-driven
// JS fallback checks entries up to 64 MiB and larger ones go unchecked.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { constants as bufferConstants } from 'node:buffer';

export class ZipError extends Error {
  override name = 'ZipError';
}

export interface ZipEntry {
  /** Name as stored (UTF-8 when the archive flags it, else read as Latin-1). */
  readonly name: string;
  /** 0 = stored, 8 = deflate (others are listed but cannot be read). */
  readonly method: number;
  readonly compressedSize: number;
  /** Uncompressed size in bytes. */
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

export interface ZipOpenOptions {
  /**
   * The entries read from the archive may inflate to at most this many times
   * the archive's size in total, or 64 MiB where that is more (default 32).
   * Weights deflate to about 0.9 of their size; only data that is mostly
   * zeros compresses further, up to deflate's limit of about 1000x, which is
   * also what a zip bomb uses.
   */
  maxInflateRatio?: number;
}

export interface ZipReadOptions {
  /** Check the entry's CRC-32 (default true). */
  verifyCrc?: boolean;
  /** Refuse entries whose uncompressed size exceeds this many bytes. */
  maxSize?: number;
}

/** Random access to the archive bytes: a file descriptor or a buffer. */
interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const MAX_COMMENT = 0xffff;
const JS_CRC_LIMIT = 64 * 1024 * 1024;
const DEFAULT_MAX_INFLATE_RATIO = 32;
const MIN_INFLATE_LIMIT = 64 * 1024 * 1024;

const METHOD_NAMES: Record<number, string> = { 1: 'shrink', 6: 'implode', 9: 'deflate64', 12: 'bzip2', 14: 'lzma', 93: 'zstd', 95: 'xz', 99: 'AES encryption' };

class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'r');
    try {
      const st = fs.fstatSync(this.fd);
      if (!st.isFile()) throw new ZipError(`Expected a regular file for zip archive ${file} but received a ${st.isDirectory() ? 'directory' : 'special file'}`);
      this.size = st.size;
    } catch (e) {
      fs.closeSync(this.fd);
      this.fd = null;
      throw e;
    }
  }

  read(offset: number, length: number): Buffer {
    if (this.fd === null) throw new ZipError(`Zip archive ${this.file} has been closed`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new ZipError(`Zip archive ${this.file} ended at byte ${offset + done} while reading ${length} bytes at ${offset} (was it truncated while open?)`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly data: Uint8Array) {
    this.size = data.length;
  }
  read(offset: number, length: number): Buffer {
    // A copy: callers own what they get back.
    return Buffer.from(this.data.subarray(offset, offset + length));
  }
  close(): void {}
}

let crcTable: Int32Array | undefined;

function jsCrc32(data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = (crcTable[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

const nativeCrc32: ((data: Uint8Array) => number) | undefined =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (data) => zlib.crc32(data) >>> 0 : undefined;

/** CRC-32 (IEEE) of data, or undefined when only the slow JS path exists and the data is large. */
export function crc32(data: Uint8Array): number | undefined {
  if (nativeCrc32 !== undefined) return nativeCrc32(data);
  return data.length <= JS_CRC_LIMIT ? jsCrc32(data) : undefined;
}

function u64(buf: Buffer, offset: number, what: string, fail: (m: string) => never): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is ${v}, beyond what this reader supports`);
  return Number(v);
}

const latin1 = (b: Buffer) => b.toString('latin1');
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * A zip archive opened for reading. `ZipArchive.open(file)` keeps a file
 * descriptor until `close()` (or `using`); `ZipArchive.fromBuffer(bytes)`
 * reads from memory.
 */
export class ZipArchive {
  /** Entries by name, in central-directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** The archive's comment (usually empty). */
  readonly comment: string;
  /** The most bytes that reads may inflate, in total (see ZipOpenOptions.maxInflateRatio). */
  readonly inflateLimit: number;
  private readonly maxInflateRatio: number;
  private inflated = 0;
  private readonly rawNames = new Map<ZipEntry, Buffer>();

  private constructor(private readonly src: ByteSource, readonly source: string, options: ZipOpenOptions) {
    const ratio = options.maxInflateRatio ?? DEFAULT_MAX_INFLATE_RATIO;
    if (typeof ratio !== 'number' || !(ratio >= 1)) {
      throw new TypeError(`Expected a number >= 1 for "maxInflateRatio" but received ${typeof ratio === 'number' ? ratio : typeof ratio}`);
    }
    this.maxInflateRatio = ratio;
    this.inflateLimit = Math.max(MIN_INFLATE_LIMIT, Math.floor(ratio * src.size));
    const { entries, comment } = this.readDirectory();
    this.entries = entries;
    this.comment = comment;
  }

  static open(file: string, options: ZipOpenOptions = {}): ZipArchive {
    let src: FileSource;
    try {
      src = new FileSource(file);
    } catch (e) {
      if (e instanceof ZipError) throw e;
      throw new ZipError(`Cannot open zip archive ${file}: ${(e as Error).message}`);
    }
    try {
      return new ZipArchive(src, file, options);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  static fromBuffer(data: Uint8Array, source = '(buffer)', options: ZipOpenOptions = {}): ZipArchive {
    return new ZipArchive(new BufferSource(data), source, options);
  }

  /** Size of the whole archive in bytes. */
  get size(): number {
    return this.src.size;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private fail(message: string): never {
    throw new ZipError(`Invalid zip archive ${this.source}: ${message}`);
  }

  private readDirectory(): { entries: Map<string, ZipEntry>; comment: string } {
    const size = this.src.size;
    if (size < EOCD_SIZE) this.fail(`expected at least ${EOCD_SIZE} bytes for the end-of-central-directory record but the file has ${size} (empty or truncated file)`);
    // The EOCD record sits at the end, followed only by a comment of up to 64 KiB.
    const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT);
    const tailStart = size - tailLength;
    const tail = this.src.read(tailStart, tailLength);
    let at = -1;
    for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tailLength) {
        at = i;
        break;
      }
    }
    if (at < 0) {
      this.fail(`expected an end-of-central-directory record in the last ${tailLength} bytes but found none (truncated file, or not a zip archive)`);
    }
    const eocdOffset = tailStart + at;
    const disk = tail.readUInt16LE(at + 4);
    const cdDisk = tail.readUInt16LE(at + 6);
    let diskEntries = tail.readUInt16LE(at + 8);
    let count: number = tail.readUInt16LE(at + 10);
    let cdSize: number = tail.readUInt32LE(at + 12);
    let cdOffset: number = tail.readUInt32LE(at + 16);
    const comment = latin1(tail.subarray(at + 22, at + 22 + tail.readUInt16LE(at + 20)));
    let directoryEnd = eocdOffset;

    // ZIP64: a locator right before the EOCD points at the ZIP64 EOCD record,
    // whose 64-bit fields replace the saturated 16/32-bit ones.
    const saturated = count === 0xffff || diskEntries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
    const locatorAt = eocdOffset - ZIP64_LOCATOR_SIZE;
    const hasLocator = locatorAt >= 0 && this.src.read(locatorAt, 4).readUInt32LE(0) === SIG_ZIP64_LOCATOR;
    if (saturated && !hasLocator) this.fail('the end-of-central-directory record has ZIP64 placeholder values but no ZIP64 locator precedes it (truncated or corrupt)');
    if (hasLocator) {
      const loc = this.src.read(locatorAt, ZIP64_LOCATOR_SIZE);
      const z64Offset = u64(loc, 8, 'the ZIP64 end-of-central-directory offset', (m) => this.fail(m));
      if (loc.readUInt32LE(16) > 1) this.fail(`expected a single-volume archive but the ZIP64 locator reports ${loc.readUInt32LE(16)} volumes`);
      if (z64Offset + ZIP64_EOCD_SIZE > locatorAt) {
        this.fail(`expected the ZIP64 end-of-central-directory record before byte ${locatorAt} but the locator points at ${z64Offset}`);
      }
      const z = this.src.read(z64Offset, ZIP64_EOCD_SIZE);
      if (z.readUInt32LE(0) !== SIG_ZIP64_EOCD) this.fail(`expected the ZIP64 end-of-central-directory signature at byte ${z64Offset} but received 0x${z.readUInt32LE(0).toString(16)}`);
      if (z.readUInt32LE(16) !== 0 || z.readUInt32LE(20) !== 0) this.fail('multi-volume (split) archives are not supported');
      diskEntries = u64(z, 24, 'the ZIP64 entry count on this disk', (m) => this.fail(m));
      count = u64(z, 32, 'the ZIP64 entry count', (m) => this.fail(m));
      cdSize = u64(z, 40, 'the ZIP64 central directory size', (m) => this.fail(m));
      cdOffset = u64(z, 48, 'the ZIP64 central directory offset', (m) => this.fail(m));
      directoryEnd = z64Offset;
    } else if (disk !== 0 || cdDisk !== 0) {
      this.fail(`multi-volume (split) archives are not supported (disk ${disk}, central directory on disk ${cdDisk})`);
    }
    if (diskEntries !== count) this.fail(`multi-volume (split) archives are not supported (${diskEntries} of ${count} entries on this disk)`);
    if (cdOffset + cdSize > directoryEnd) {
      this.fail(`expected the central directory (${cdSize} bytes at byte ${cdOffset}) to end before byte ${directoryEnd} but it extends past it (truncated or corrupt)`);
    }
    if (count * CENTRAL_SIZE > cdSize) this.fail(`expected at least ${count * CENTRAL_SIZE} bytes of central directory for ${count} entries but received ${cdSize}`);

    const cd = this.src.read(cdOffset, cdSize);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_SIZE > cd.length) this.fail(`central directory entry ${i} of ${count} runs past the end of the central directory`);
      const sig = cd.readUInt32LE(p);
      if (sig !== SIG_CENTRAL) this.fail(`expected a central directory entry signature at byte ${cdOffset + p} but received 0x${sig.toString(16)}`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize: number = cd.readUInt32LE(p + 20);
      let uncompressedSize: number = cd.readUInt32LE(p + 24);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      const startDisk = cd.readUInt16LE(p + 34);
      let localHeaderOffset: number = cd.readUInt32LE(p + 42);
      const end = p + CENTRAL_SIZE + nameLength + extraLength + commentLength;
      if (end > cd.length) this.fail(`central directory entry ${i} (${end - p} bytes) runs past the end of the central directory`);
      const nameBytes = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLength);
      let name: string;
      if (flags & 0x800) {
        try {
          name = utf8Decoder.decode(nameBytes);
        } catch {
          this.fail(`central directory entry ${i} has a name flagged UTF-8 that is not valid UTF-8`);
        }
      } else {
        name = latin1(nameBytes);
      }
      // ZIP64 extended information: only the saturated fields are present, in this order.
      const extra = cd.subarray(p + CENTRAL_SIZE + nameLength, p + CENTRAL_SIZE + nameLength + extraLength);
      const needU = uncompressedSize === 0xffffffff;
      const needC = compressedSize === 0xffffffff;
      const needO = localHeaderOffset === 0xffffffff;
      if (needU || needC || needO) {
        let q = 0;
        let found = false;
        while (q + 4 <= extra.length) {
          const id = extra.readUInt16LE(q);
          const len = extra.readUInt16LE(q + 2);
          if (q + 4 + len > extra.length) break;
          if (id === 0x0001) {
            found = true;
            const field = extra.subarray(q + 4, q + 4 + len);
            let r = 0;
            const take = (what: string): number => {
              if (r + 8 > field.length) this.fail(`entry "${name}": expected a 64-bit ${what} in its ZIP64 extra field but the field has ${field.length} bytes`);
              const v = u64(field, r, `entry "${name}": ${what}`, (m) => this.fail(m));
              r += 8;
              return v;
            };
            if (needU) uncompressedSize = take('uncompressed size');
            if (needC) compressedSize = take('compressed size');
            if (needO) localHeaderOffset = take('local header offset');
            break;
          }
          q += 4 + len;
        }
        if (!found) this.fail(`entry "${name}" has 32-bit placeholder sizes or offset but no ZIP64 extra field`);
      }
      if (startDisk !== 0 && startDisk !== 0xffff) this.fail(`entry "${name}" starts on disk ${startDisk}; multi-volume archives are not supported`);
      if (flags & 0x1) this.fail(`entry "${name}" is encrypted; encrypted archives are not supported`);
      if (method === 0 && compressedSize !== uncompressedSize) {
        this.fail(`entry "${name}" is stored (uncompressed) but its sizes differ: ${compressedSize} compressed vs ${uncompressedSize}`);
      }
      if (localHeaderOffset + LOCAL_SIZE + compressedSize > cdOffset) {
        this.fail(`entry "${name}" (${compressedSize} bytes at byte ${localHeaderOffset}) extends past the start of the central directory at byte ${cdOffset}`);
      }
      if (entries.has(name)) this.fail(`expected unique entry names but "${name}" appears twice`);
      const entry: ZipEntry = { name, method, compressedSize, size: uncompressedSize, crc32: crc, localHeaderOffset };
      entries.set(name, entry);
      this.rawNames.set(entry, Buffer.from(nameBytes));
      p = end;
    }
    this.checkDisjoint([...entries.values()]);
    return { entries, comment };
  }

  /** Entries must not share bytes: overlapping entries let a small archive inflate one compressed stream many times. */
  private checkDisjoint(entries: ZipEntry[]): void {
    const sorted = entries.sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as ZipEntry;
      const next = sorted[i] as ZipEntry;
      // The local header repeats the name; its extra field may differ in length, so this end is a lower bound.
      const prevEnd = prev.localHeaderOffset + LOCAL_SIZE + (this.rawNames.get(prev) as Buffer).length + prev.compressedSize;
      if (prevEnd > next.localHeaderOffset) {
        this.fail(`entries "${prev.name}" (bytes ${prev.localHeaderOffset} to at least ${prevEnd}) and "${next.name}" (from byte ${next.localHeaderOffset}) overlap; overlapping entries are not allowed (a zip-bomb construction)`);
      }
    }
  }

  /** Offset of the entry's data, after validating its local header against the central directory. */
  dataOffset(entry: ZipEntry): number {
    const at = entry.localHeaderOffset;
    if (at + LOCAL_SIZE > this.src.size) this.fail(`entry "${entry.name}": its local header at byte ${at} is past the end of the file (${this.src.size} bytes)`);
    const h = this.src.read(at, LOCAL_SIZE);
    const sig = h.readUInt32LE(0);
    if (sig !== SIG_LOCAL) this.fail(`entry "${entry.name}": expected a local header signature at byte ${at} but received 0x${sig.toString(16)}`);
    const method = h.readUInt16LE(8);
    if (method !== entry.method) this.fail(`entry "${entry.name}": the local header says compression method ${method} but the central directory says ${entry.method}`);
    const nameLength = h.readUInt16LE(26);
    const extraLength = h.readUInt16LE(28);
    const expected = this.rawNames.get(entry);
    if (expected === undefined) this.fail(`entry "${entry.name}" does not belong to this archive`);
    if (nameLength !== expected.length) this.fail(`entry "${entry.name}": expected a ${expected.length}-byte name in its local header but received ${nameLength} bytes`);
    if (at + LOCAL_SIZE + nameLength > this.src.size) this.fail(`entry "${entry.name}": its local header at byte ${at} runs past the end of the file (${this.src.size} bytes)`);
    const name = this.src.read(at + LOCAL_SIZE, nameLength);
    if (!name.equals(expected)) this.fail(`entry "${entry.name}": the local header names it ${JSON.stringify(latin1(name))}`);
    const start = at + LOCAL_SIZE + nameLength + extraLength;
    if (start + entry.compressedSize > this.src.size) {
      this.fail(`entry "${entry.name}": expected ${entry.compressedSize} bytes of data at byte ${start} but the file ends at byte ${this.src.size} (truncated file)`);
    }
    return start;
  }

  /** The entry's uncompressed bytes (a fresh Buffer the caller owns). */
  read(nameOrEntry: string | ZipEntry, options: ZipReadOptions = {}): Buffer {
    const entry = typeof nameOrEntry === 'string' ? this.entries.get(nameOrEntry) : nameOrEntry;
    if (entry === undefined) this.fail(`expected an entry named "${String(nameOrEntry)}" but the archive has none`);
    if (options.maxSize !== undefined && entry.size > options.maxSize) {
      this.fail(`entry "${entry.name}" has ${entry.size} bytes, more than the ${options.maxSize} allowed`);
    }
    if (entry.method === 8 && this.inflated + entry.size > this.inflateLimit) {
      this.fail(`entry "${entry.name}" would inflate to ${entry.size} bytes (after ${this.inflated} already inflated), more than the ${this.inflateLimit} bytes allowed for a ${this.src.size}-byte archive (maxInflateRatio ${this.maxInflateRatio}; raise it to read this archive)`);
    }
    if (entry.size > bufferConstants.MAX_LENGTH) {
      this.fail(`entry "${entry.name}" has ${entry.size} bytes, more than the largest Buffer this Node can hold (${bufferConstants.MAX_LENGTH})`);
    }
    const start = this.dataOffset(entry);
    let data: Buffer;
    if (entry.method === 0) {
      data = this.src.read(start, entry.size);
    } else if (entry.method === 8) {
      const compressed = this.src.read(start, entry.compressedSize);
      try {
        data = zlib.inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.size) });
      } catch (e) {
        this.fail(`entry "${entry.name}" could not be inflated: ${(e as Error).message}`);
      }
      this.inflated += data.length;
      if (data.length !== entry.size) this.fail(`entry "${entry.name}": expected ${entry.size} bytes after inflating but received ${data.length}`);
    } else {
      const what = METHOD_NAMES[entry.method];
      this.fail(`entry "${entry.name}" uses compression method ${entry.method}${what ? ` (${what})` : ''}; only stored (0) and deflate (8) are supported`);
    }
    if (options.verifyCrc !== false) {
      const crc = crc32(data);
      if (crc !== undefined && crc !== entry.crc32) {
        this.fail(`entry "${entry.name}": expected CRC-32 0x${entry.crc32.toString(16).padStart(8, '0')} but the data has 0x${crc.toString(16).padStart(8, '0')} (corrupt file)`);
      }
    }
    return data;
  }
}
