// Image sources for embedding and evaluation: an IDX file (MNIST style), a
// folder of image files, or an explicit list of files, read in order as
// batches of normalised float32 NCHW tensors.
import * as fs from 'node:fs';
import type { Device } from '../tensor/device';
import type { Tensor } from '../tensor/tensor';
import { loadIdxImages } from './idx';
import { IMAGE_EXTENSIONS, decodeImage, grayToRgb, isImageFile, listImageFiles, rgbToGray, type RawImage } from './image-folder';
import { checkChannels, defaultNormalization, resizeShorterAndCenterCrop, toNormalizedTensor } from './preprocess';

export type ImageSourceSpec =
  | { kind: 'idx'; file: string }
  | { kind: 'folder'; root: string; recursive?: boolean }
  | { kind: 'files'; files: readonly string[] };

export interface ImageSource {
  readonly kind: 'idx' | 'folder' | 'files';
  /** The IDX file or folder (for 'files', the first file). */
  readonly path: string;
  readonly count: number;
  /** Channels items are read with by default: 1 for IDX, 3 for image files unless opened with another. */
  readonly channels: 1 | 3;
  /** One line for logs, e.g. "IDX file x.gz: 10000 images, 28 x 28, 1 channel". */
  readonly describe: string;
  /** The image files in item order ('folder' and 'files'); null for IDX. */
  readonly files: readonly string[] | null;
  /** Item index as HWC uint8 at its stored size, with the channels asked for (default this.channels). */
  read(index: number, channels?: 1 | 3): Promise<RawImage>;
}

export interface OpenOptions {
  /** Default channels of the source's items (IDX: 1, image files: 3). */
  channels?: 1 | 3;
  /** For folders: descend into sub-folders (default true). */
  recursive?: boolean;
}

function checkIndex(index: number, count: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`Expected an item index in [0, ${count}) but received ${index}`);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function idxSource(file: string, options: OpenOptions): ImageSource {
  const { images, count, height, width } = loadIdxImages(file);
  const channels = checkChannels(options.channels ?? 1);
  const pixels = height * width;
  return {
    kind: 'idx',
    path: file,
    count,
    channels,
    describe: `IDX file ${file}: ${plural(count, 'image')}, ${height} x ${width}, 1 channel${channels === 3 ? ' (read as 3)' : ''}`,
    files: null,
    read(index, c = channels) {
      checkIndex(index, count);
      checkChannels(c);
      const gray = images.subarray(index * pixels, (index + 1) * pixels);
      return Promise.resolve({ data: c === 1 ? gray : grayToRgb(gray), height, width, channels: c });
    },
  };
}

function fileSource(kind: 'folder' | 'files', where: string, files: readonly string[], options: OpenOptions): ImageSource {
  if (files.length === 0) {
    throw new Error(kind === 'folder' ? `Expected image files (${IMAGE_EXTENSIONS.join(' ')}) under ${where} but found none` : 'Expected at least one image file but received an empty list');
  }
  const channels = checkChannels(options.channels ?? 3);
  const list = Object.freeze([...files]);
  return {
    kind,
    path: where,
    count: list.length,
    channels,
    describe: `${kind === 'folder' ? `image folder ${where}` : plural(list.length, 'image file')}: ${plural(list.length, 'image')}, read as ${plural(channels, 'channel')}`,
    files: list,
    async read(index, c = channels) {
      checkIndex(index, list.length);
      const image = await decodeImage(list[index]!, { channels: checkChannels(c) });
      return image;
    },
  };
}

/**
 * Opens an image source: a directory is a folder of images (listed with
 * listImageFiles), an image file (by its extension) a one-image list, and any
 * other file an IDX image file (gzipped or not). IDX images are loaded into
 * memory now; image files are decoded when read.
 */
export function openImageSource(source: string | ImageSourceSpec, options: OpenOptions = {}): ImageSource {
  if (typeof source !== 'string') {
    switch (source.kind) {
      case 'idx':
        return idxSource(source.file, options);
      case 'folder':
        return fileSource('folder', source.root, listImageFiles(source.root, { recursive: source.recursive ?? options.recursive ?? true }), options);
      case 'files':
        return fileSource('files', source.files[0] ?? '', source.files, options);
      default:
        throw new TypeError(`Expected an image source of kind 'idx', 'folder' or 'files' but received ${JSON.stringify(source)}`);
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    throw new Error(`Expected an image folder, image file or IDX file but ${source} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) return fileSource('folder', source, listImageFiles(source, { recursive: options.recursive ?? true }), options);
  if (isImageFile(source)) return fileSource('files', source, [source], options);
  return idxSource(source, options);
}

export interface ImageBatchOptions {
  /** The model's input size: items are resized (shorter side) and centre-cropped to size x size. */
  size: number;
  batchSize: number;
  /** Default: the source's channels. */
  channels?: 1 | 3;
  /** Default: defaultNormalization(channels). */
  mean?: readonly number[];
  std?: readonly number[];
  device?: Device;
  /** Items decoded at once (default 4; sharp decodes off the main thread). */
  concurrency?: number;
  /** First item (default 0). */
  start?: number;
  /** One past the last item (default count). */
  end?: number;
}

export interface ImageBatch {
  /** float32 count x C x size x size, normalised; the caller disposes it. */
  images: Tensor;
  /** Index of the first item in the source. */
  index: number;
  count: number;
  /** The batch's files, for file sources. */
  files?: string[];
}

function checkPositiveInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new TypeError(`Expected a positive integer for ${what} but received ${String(value)}`);
  return value;
}

async function loadBatch(source: ImageSource, first: number, count: number, size: number, channels: 1 | 3, concurrency: number): Promise<Uint8Array> {
  const itemBytes = size * size * channels;
  const out = new Uint8Array(count * itemBytes);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const raw = await source.read(first + i, channels);
      let pixels = raw.data;
      if (raw.channels !== channels) pixels = channels === 1 ? rgbToGray(pixels) : grayToRgb(pixels);
      out.set(await resizeShorterAndCenterCrop(pixels, raw.height, raw.width, channels, size), i * itemBytes);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

/**
 * Yields the items of source in order as normalised batches. The next batch
 * is decoded while the caller works on the current one (its tensor is only
 * made when it is yielded, so stopping early leaks nothing). A file that
 * fails to decode rejects the iteration with an Error naming the file.
 */
export async function* imageBatches(source: ImageSource | ImageSourceSpec | string, options: ImageBatchOptions): AsyncGenerator<ImageBatch, void, undefined> {
  const src = typeof source === 'string' || !('read' in source) ? openImageSource(source) : source;
  const size = checkPositiveInt(options.size, '"size"');
  const batchSize = checkPositiveInt(options.batchSize, '"batchSize"');
  const concurrency = checkPositiveInt(options.concurrency ?? 4, '"concurrency"');
  const channels = checkChannels(options.channels ?? src.channels);
  const norm = defaultNormalization(channels);
  const mean = options.mean ?? norm.mean;
  const std = options.std ?? norm.std;
  if (mean.length !== channels || std.length !== channels) {
    throw new RangeError(`Expected ${channels} mean and std value(s), one per channel, but received mean ${JSON.stringify(mean)} and std ${JSON.stringify(std)}`);
  }
  const start = options.start ?? 0;
  const end = options.end ?? src.count;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > src.count || start > end) {
    throw new RangeError(`Expected 0 <= start <= end <= ${src.count} but received start ${start}, end ${end}`);
  }
  const fetch = (first: number): Promise<Uint8Array> | null => {
    if (first >= end) return null;
    const p = loadBatch(src, first, Math.min(batchSize, end - first), size, channels, concurrency);
    p.catch(() => {}); // awaited below; this only keeps an abandoned prefetch from being an unhandled rejection
    return p;
  };
  let pending = fetch(start);
  for (let first = start; pending !== null; first += batchSize) {
    const pixels = await pending;
    pending = fetch(first + batchSize);
    const count = Math.min(batchSize, end - first);
    const images = toNormalizedTensor(pixels, count, size, size, channels, mean, std, options.device);
    const batch: ImageBatch = { images, index: first, count };
    if (src.files !== null) batch.files = src.files.slice(first, first + count);
    yield batch;
  }
}
