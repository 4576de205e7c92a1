// The one item reader behind training, evaluation and embedding: an IDX file
// (MNIST style, labels found beside it), a folder of images (one sub-folder
// per class, or flat), a single image file, an explicit list of files, or a
// pack of uint8 shards written by `extrema pack` (./shards).
// Every item comes out as HWC uint8 at one square size (shorter side resized,
// centre crop), so batches stack. IDX images live in memory; image files are
// decoded by sharp, off the main thread, when read.
import * as fs from 'node:fs';
import { loadIdxImages, loadIdxLabels } from './idx';
import { IMAGE_EXTENSIONS, decodeImage, grayToRgb, isImageFile, listClassFolder, listImageFiles } from './image-folder';
import { checkChannels, resizeShorterAndCenterCrop } from './preprocess';
import { intInRange, positiveInt } from '../checks';
import { isPack, openPack } from './shards';
import { checkIndex, limited } from './items';

export type DatasetSpec =
  | string
  | { kind: 'idx'; file: string; labels?: string | null }
  | { kind: 'folder'; root: string; recursive?: boolean }
  | { kind: 'files'; files: readonly string[] }
  | { kind: 'pack'; dir: string };

export interface ImageDataset {
  readonly kind: 'idx' | 'folder' | 'files' | 'pack';
  /** The IDX file or folder (for 'files', the first file). */
  readonly path: string;
  readonly count: number;
  /** Side of every item in pixels. */
  readonly size: number;
  readonly channels: 1 | 3;
  /** Class index per item, or null for unlabelled data. */
  readonly labels: Int32Array | null;
  /** Class names (folder sub-folders), or null. */
  readonly classes: readonly string[] | null;
  /** The image files in item order, or null for IDX. */
  readonly files: readonly string[] | null;
  /** One line for logs, e.g. "IDX file x.gz: 10000 images, 28 x 28, labelled". */
  readonly describe: string;
  /** Item i as size x size x channels uint8 (rejects, naming the file, for one that does not decode). */
  read(i: number): Promise<Uint8Array>;
  /**
   * Optional batch read, for readers that can do better than one read(i)
   * each (packs): items `indices` into `into` (exactly indices.length items),
   * item k at k x size x size x channels, the same bytes read(i) gives.
   * Rejects on any failure without saying which items were written, and only
   * once no read still writes into `into`; the loader then reads the batch
   * item by item, which names the item that fails.
   */
  readInto?(indices: readonly number[], into: Uint8Array): Promise<void>;
  /** A name for messages: the file, or "<idx file>#i". */
  name(i: number): string;
}

export interface DatasetOptions {
  /** Side of the items in pixels: images are resized (shorter side) and centre-cropped to size x size. */
  size: number;
  /** Channels to read (default: 1 for IDX, 3 for image files). */
  channels?: 1 | 3;
  /** For IDX images: the labels file; null for none (default: found by name beside the images, see defaultLabelsFile). */
  labels?: string | null;
  /** Use only the first `limit` items (0 or absent: all). */
  limit?: number;
  /** For flat folders: descend into sub-folders (default true). */
  recursive?: boolean;
}

/** The labels file beside an IDX images file ("images-idx3" -> "labels-idx1"), if it exists. */
export function defaultLabelsFile(imagesFile: string): string | null {
  const guess = imagesFile.replace('images-idx3', 'labels-idx1');
  return guess !== imagesFile && fs.existsSync(guess) ? guess : null;
}

const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;


function idxDataset(file: string, labelsOption: string | null | undefined, o: DatasetOptions, size: number): ImageDataset {
  const { images, count: stored, height, width } = loadIdxImages(file);
  const count = limited(stored, o.limit);
  const channels = checkChannels(o.channels ?? 1);
  const labelsFile = labelsOption === undefined ? defaultLabelsFile(file) : labelsOption;
  let labels: Int32Array | null = null;
  if (labelsFile !== null) {
    const raw = loadIdxLabels(labelsFile);
    if (raw.length < stored) throw new RangeError(`Expected ${stored} labels in ${labelsFile} (one per image of ${file}) but it has ${raw.length}`);
    labels = Int32Array.from(raw.subarray(0, count));
  }
  const pixels = height * width;
  return {
    kind: 'idx', path: file, count, size, channels, labels, classes: null, files: null,
    describe: `IDX file ${file}: ${plural(count, 'image')}, ${height} x ${width}, 1 channel${channels === 3 ? ' (read as 3)' : ''}${labels ? ', labelled' : ''}`,
    read(i) {
      checkIndex(i, count);
      const gray = images.subarray(i * pixels, (i + 1) * pixels);
      return resizeShorterAndCenterCrop(channels === 1 ? gray : grayToRgb(gray), height, width, channels, size);
    },
    name: (i) => `${file}#${i}`,
  };
}

function fileDataset(
  kind: 'folder' | 'files', where: string, listed: { files: readonly string[]; labels: readonly number[] | null; classes: readonly string[] | null },
  o: DatasetOptions, size: number,
): ImageDataset {
  const count = limited(listed.files.length, o.limit);
  if (count === 0) {
    throw new Error(kind === 'folder' ? `Expected image files (${IMAGE_EXTENSIONS.join(' ')}) under ${where} but found none` : 'Expected at least one image file but received an empty list');
  }
  const files = Object.freeze(listed.files.slice(0, count));
  const channels = checkChannels(o.channels ?? 3);
  const classes = listed.classes === null ? null : Object.freeze([...listed.classes]);
  return {
    kind, path: where, count, size, channels, classes, files,
    labels: listed.labels === null ? null : Int32Array.from(listed.labels.slice(0, count)),
    describe: `${kind === 'folder' ? `image folder ${where}` : plural(count, 'image file')}: ${plural(count, 'image')}${classes ? ` in ${plural(classes.length, 'class', 'classes')}` : ''}, read as ${plural(channels, 'channel')}`,
    async read(i) {
      checkIndex(i, count);
      return (await decodeImage(files[i]!, { channels, size })).data;
    },
    name: (i) => files[i] ?? `item ${i}`,
  };
}

/**
 * A folder with sub-folders and no images of its own is the class layout
 * (torchvision's ImageFolder: classes are the sorted sub-folders, labels
 * follow); any other folder is a flat, unlabelled list of every image under
 * it, sorted by relative path.
 */
function folderDataset(root: string, o: DatasetOptions, size: number, recursive: boolean): ImageDataset {
  const entries = fs.readdirSync(root, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const hasSubfolders = entries.some((e) => e.isDirectory() || (e.isSymbolicLink() && isDirectory(`${root}/${e.name}`)));
  const hasOwnImages = entries.some((e) => !e.isDirectory() && isImageFile(e.name));
  if (hasSubfolders && !hasOwnImages) return fileDataset('folder', root, listClassFolder(root), o, size);
  return fileDataset('folder', root, { files: listImageFiles(root, { recursive }), labels: null, classes: null }, o, size);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Opens a dataset. A directory with a pack index is a pack, any other
 * directory an image folder, an image
 * file (by its extension) a one-item list, and any other file an IDX images
 * file (gzipped or not). IDX images are loaded into memory now; image files
 * are decoded when read.
 */
export function openDataset(source: DatasetSpec, options: DatasetOptions): ImageDataset {
  const size = positiveInt(options?.size, 'the dataset image size');
  if (options.limit !== undefined) intInRange(options.limit, 'the dataset limit', 0);
  if (typeof source !== 'string') {
    switch (source?.kind) {
      case 'idx':
        return idxDataset(source.file, source.labels ?? options.labels, options, size);
      case 'folder':
        return folderDataset(source.root, options, size, source.recursive ?? options.recursive ?? true);
      case 'files':
        return fileDataset('files', source.files[0] ?? '', { files: source.files, labels: null, classes: null }, options, size);
      case 'pack':
        return openPack(source.dir, { size, channels: options.channels, limit: options.limit });
      default:
        throw new TypeError(`Expected a path or a dataset of kind 'idx', 'folder', 'files' or 'pack' but received ${JSON.stringify(source)}`);
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    throw new Error(`Expected an image folder, image file or IDX file but ${source} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  if (st.isDirectory()) return isPack(source) ? openPack(source, { size, channels: options.channels, limit: options.limit }) : folderDataset(source, options, size, options.recursive ?? true);
  if (isImageFile(source)) return fileDataset('files', source, { files: [source], labels: null, classes: null }, options, size);
  return idxDataset(source, options.labels, options, size);
}
