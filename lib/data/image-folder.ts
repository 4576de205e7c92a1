// Image files on disk: listing a folder (flat, or one sub-folder per class)
// in a deterministic order, and decoding a file to HWC uint8 with sharp.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { resizeShorterAndCenterCrop } from './preprocess';
import { decodePlainPng, PLAIN_PNG_MAX_PIXELS, type PlainPng } from '../io/png';

/**
 * Suffixes of the formats sharp's prebuilt libvips decodes (lower case). SVG
 * (vector, rendered rather than decoded) and HEIC (no HEVC decoder in the
 * prebuilt binaries) are left out; BMP is not decoded by sharp at all.
 */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

const EXTENSIONS = new Set(IMAGE_EXTENSIONS);

/** Whether the name ends in one of IMAGE_EXTENSIONS (case-insensitive). */
export function isImageFile(name: string): boolean {
  return EXTENSIONS.has(path.extname(name).toLowerCase());
}

export interface ListOptions {
  /** Descend into sub-folders (default true). */
  recursive?: boolean;
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function checkFolder(root: string): void {
  const st = statOrNull(root);
  if (st === null) throw new Error(`Expected an image folder but ${root} does not exist`);
  if (!st.isDirectory()) throw new Error(`Expected an image folder but ${root} is not a directory`);
}

/**
 * Walks dir; pushes paths relative to the walk's root, '/'-separated.
 * Hidden entries (names starting with '.', such as macOS "._x.jpg" resource
 * forks or .ipynb_checkpoints) are skipped. Symbolic links are followed; a
 * folder already visited (a link cycle) is not walked twice.
 */
function walk(dir: string, rel: string, recursive: boolean, seen: Set<string>, out: string[]): void {
  const real = fs.realpathSync(dir);
  if (seen.has(real)) return;
  seen.add(real);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    const relName = rel === '' ? entry.name : `${rel}/${entry.name}`;
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      const st = statOrNull(full);
      isDir = st?.isDirectory() ?? false;
      isFile = st?.isFile() ?? false;
    }
    if (isDir) {
      if (recursive) walk(full, relName, recursive, seen, out);
    } else if (isFile && isImageFile(entry.name)) {
      out.push(relName);
    }
  }
}

function listRelative(root: string, recursive: boolean): string[] {
  const rel: string[] = [];
  walk(root, '', recursive, new Set(), rel);
  return rel.sort(compareCodeUnits);
}

function join(root: string, rel: string): string {
  return path.join(root, ...rel.split('/'));
}

/**
 * Image files under root (see IMAGE_EXTENSIONS), as path.join(root, relative
 * path), sorted by the relative path with '/' separators in plain code-unit
 * order, so the order is the same on every machine and file system.
 */
export function listImageFiles(root: string, options: ListOptions = {}): string[] {
  checkFolder(root);
  return listRelative(root, options.recursive ?? true).map((r) => join(root, r));
}

export interface ClassFolder {
  /** Every image, grouped by class in class order, sorted within a class. */
  files: string[];
  /** Class index of each file (into classes). */
  labels: number[];
  /** Sub-folder names, sorted in code-unit order. */
  classes: string[];
}

/**
 * The one-sub-folder-per-class layout (root/<class>/**\/<image>, as
 * torchvision's ImageFolder reads it): classes are the sub-folders, sorted;
 * images are found recursively inside each; files directly in root are
 * ignored. A class folder without images, or a root without class folders,
 * is an error.
 */
export function listClassFolder(root: string): ClassFolder {
  checkFolder(root);
  const classes = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && (e.isDirectory() || (e.isSymbolicLink() && (statOrNull(path.join(root, e.name))?.isDirectory() ?? false))))
    .map((e) => e.name)
    .sort(compareCodeUnits);
  if (classes.length === 0) throw new Error(`Expected one sub-folder per class in ${root} but found no sub-folders`);
  const files: string[] = [];
  const labels: number[] = [];
  classes.forEach((name, label) => {
    const dir = path.join(root, name);
    const rel = listRelative(dir, true);
    if (rel.length === 0) throw new Error(`Expected image files (${IMAGE_EXTENSIONS.join(' ')}) in class folder ${dir} but found none`);
    for (const r of rel) {
      files.push(join(dir, r));
      labels.push(label);
    }
  });
  return { files, labels, classes };
}

export interface RawImage {
  /** height x width x channels, row-major uint8. */
  data: Uint8Array;
  height: number;
  width: number;
  channels: 1 | 3;
}

export interface DecodeOptions {
  /** 3 for RGB (default), 1 for grayscale. */
  channels?: 1 | 3;
  /** Resize the shorter side to size and centre-crop to size x size (see resizeShorterAndCenterCrop). */
  size?: number;
  /**
   * Apply the EXIF orientation (default false: pixels as stored, which is what
   * torchvision's PIL-based loader sees).
   */
  autoOrient?: boolean;
  /** Refuse images with more pixels than this, from the header, before decoding (default: sharp's 268M). */
  maxPixels?: number;
}

/** ITU-R 601-2 luma, L = R*299/1000 + G*587/1000 + B*114/1000 rounded (PIL's convert('L') formula). */
export function rgbToGray(rgb: Uint8Array): Uint8Array {
  if (rgb.length % 3 !== 0) throw new RangeError(`Expected RGB bytes (a multiple of 3) but received ${rgb.length}`);
  const out = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; i < out.length; i++, j += 3) {
    out[i] = Math.floor((rgb[j]! * 299 + rgb[j + 1]! * 587 + rgb[j + 2]! * 114 + 500) / 1000);
  }
  return out;
}

/** Replicates a gray channel into three. */
export function grayToRgb(gray: Uint8Array): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let i = 0, j = 0; i < gray.length; i++, j += 3) out[j] = out[j + 1] = out[j + 2] = gray[i]!;
  return out;
}

/** HWC pixels with `from` channels as `to` channels (1 or 3): rgbToGray, grayToRgb, or the same array. */
export function withChannels(data: Uint8Array, from: 1 | 3, to: 1 | 3): Uint8Array {
  return from === to ? data : to === 1 ? rgbToGray(data) : grayToRgb(data);
}

/**
 * Decodes an image file to HWC uint8 with sharp (the first frame of an
 * animation). Transparency is flattened onto white rather than dropped:
 * transparent pixels often hold arbitrary colour (commonly black), and
 * icons, emoji and cut-outs are drawn to be seen on a light page, so white is
 * what the image looks like. Colour is converted to 8-bit sRGB (16-bit, CMYK,
 * palette and gray inputs included); for one channel, gray is the ITU-R 601
 * luma of that sRGB (the formula of PIL and torchvision's Grayscale), computed
 * here, not libvips' CIELAB-based b-w conversion, whose values differ (pure
 * red gives 127 there, 76 here). With `size`, the image is then resized and
 * cropped like an in-memory array. A file that cannot be decoded (missing,
 * truncated, not an image) rejects with an Error naming the file. Small plain
 * PNGs (8-bit gray or RGB, at most 256 x 256, no transparency, profile or
 * gamma: lib/io/png.ts) skip sharp, whose fixed cost is about 0.5 ms an
 * image; their pixels are the ones sharp gives.
 */
export async function decodeImage(file: string | Uint8Array, options: DecodeOptions = {}): Promise<RawImage> {
  const channels = options.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new RangeError(`Expected 1 or 3 channels but received ${String(channels)}`);
  const what = typeof file === 'string' ? file : `(${file.length} bytes)`;
  let data: Uint8Array;
  let width: number;
  let height: number;
  // Small plain PNGs skip sharp: the same pixels, without its fixed cost (lib/io/png.ts).
  const plain = await plainPng(file, options.maxPixels);
  if (plain !== null) {
    data = withChannels(plain.data, plain.channels, channels);
    ({ width, height } = plain);
  } else {
    try {
      const out = await sharp(file, { autoOrient: options.autoOrient ?? false, ...(options.maxPixels === undefined ? {} : { limitInputPixels: options.maxPixels }) })
        .flatten({ background: { r: 255, g: 255, b: 255 } })
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      if (out.info.channels !== 3) throw new Error(`Expected 3 channels after conversion to sRGB but received ${out.info.channels}`);
      data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
      width = out.info.width;
      height = out.info.height;
    } catch (e) {
      throw new Error(`Cannot decode image ${what}: ${(e as Error).message}`, { cause: e });
    }
    if (channels === 1) data = rgbToGray(data);
  }
  if (options.size !== undefined) {
    data = await resizeShorterAndCenterCrop(data, height, width, channels, options.size);
    height = width = options.size;
  }
  return { data, height, width, channels };
}

/** A plain PNG's pixels (decodePlainPng) from bytes or a .png file, or null for sharp. Never throws: sharp words the errors. */
async function plainPng(file: string | Uint8Array, maxPixels: number | undefined): Promise<PlainPng | null> {
  // No orientation to apply either way: a PNG with an eXIf chunk is not plain.
  if (typeof file !== 'string') return decodePlainPng(file, maxPixels);
  if (!file.toLowerCase().endsWith('.png')) return null;
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      // Only small files can hold a plain PNG of at most PLAIN_PNG_MAX_PIXELS; larger ones are left to sharp unread.
      const { size } = await handle.stat();
      if (size > 4 * PLAIN_PNG_MAX_PIXELS) return null;
      const bytes = new Uint8Array(size);
      const { bytesRead } = await handle.read(bytes, 0, size, 0);
      return bytesRead === size ? decodePlainPng(bytes, maxPixels) : null;
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}
