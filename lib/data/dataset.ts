// Labelled image datasets for training: every item comes out as HWC uint8 at
// one fixed size, so batches stack. IDX files live in memory; image folders
// (one sub-folder per class, or a flat folder without labels) are decoded by
// sharp, off the main thread, when read.
import * as fs from 'node:fs';
import { loadIdxImages, loadIdxLabels } from './idx';
import { decodeImage, grayToRgb, listClassFolder, listImageFiles } from './image-folder';
import { resizeShorterAndCenterCrop } from './preprocess';

export interface ImageDataset {
  readonly count: number;
  readonly size: number;
  readonly channels: 1 | 3;
  /** Class index per item, or null for an unlabelled folder. */
  readonly labels: Int32Array | null;
  readonly classes: readonly string[] | null;
  readonly describe: string;
  /** Item i as size x size x channels uint8 (may reject for a file that does not decode). */
  read(i: number): Promise<Uint8Array>;
  /** A name for messages (the file, or "<idx file>#i"). */
  name(i: number): string;
}

export interface DatasetOptions {
  /** Output side in pixels; items of another size are resized (shorter side) and centre-cropped. */
  size: number;
  /** Channels to read (default: 1 for IDX, 3 for image files). */
  channels?: 1 | 3;
  /** For IDX images: the labels file (default: the images file name with "images-idx3" replaced by "labels-idx1", if it exists). */
  labels?: string | null;
  /** Use only the first `limit` items. */
  limit?: number;
}

export function defaultLabelsFile(imagesFile: string): string | null {
  const guess = imagesFile.replace('images-idx3', 'labels-idx1');
  return guess !== imagesFile && fs.existsSync(guess) ? guess : null;
}

function idxDataset(file: string, o: DatasetOptions): ImageDataset {
  const { images, count: stored, height, width } = loadIdxImages(file);
  const count = Math.min(stored, o.limit ?? stored);
  const channels = o.channels ?? 1;
  const labelsFile = o.labels === undefined ? defaultLabelsFile(file) : o.labels;
  let labels: Int32Array | null = null;
  if (labelsFile !== null) {
    const raw = loadIdxLabels(labelsFile);
    if (raw.length < stored) throw new RangeError(`Expected ${stored} labels in ${labelsFile} (one per image of ${file}) but it has ${raw.length}`);
    labels = Int32Array.from(raw.subarray(0, count));
  }
  const pixels = height * width;
  return {
    count, size: o.size, channels, labels, classes: null,
    describe: `IDX ${file}: ${count} images ${height}x${width}${labels ? ', labelled' : ''}`,
    async read(i) {
      let item = images.subarray(i * pixels, (i + 1) * pixels);
      if (channels === 3) item = grayToRgb(item);
      return resizeShorterAndCenterCrop(item, height, width, channels, o.size);
    },
    name: (i) => `${file}#${i}`,
  };
}

function folderDataset(root: string, o: DatasetOptions): ImageDataset {
  const hasClasses = fs.readdirSync(root, { withFileTypes: true }).some((e) => e.isDirectory() && !e.name.startsWith('.'));
  const listed = hasClasses ? listClassFolder(root) : { files: listImageFiles(root), labels: null, classes: null };
  const count = Math.min(listed.files.length, o.limit ?? listed.files.length);
  if (count === 0) throw new RangeError(`No images found in ${root}`);
  const files = listed.files.slice(0, count);
  const channels = o.channels ?? 3;
  return {
    count, size: o.size, channels,
    labels: listed.labels === null ? null : Int32Array.from(listed.labels.slice(0, count)),
    classes: listed.classes,
    describe: `image folder ${root}: ${count} images${listed.classes ? ` in ${listed.classes.length} classes` : ''}`,
    async read(i) {
      return (await decodeImage(files[i] as string, { channels, size: o.size })).data;
    },
    name: (i) => files[i] as string,
  };
}

/** An IDX image file (with its labels file next to it) or an image folder. */
export function openDataset(path: string, o: DatasetOptions): ImageDataset {
  if (!Number.isSafeInteger(o.size) || o.size < 1) throw new RangeError(`Expected a positive integer image size but received ${String(o.size)}`);
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    throw new Error(`Cannot read the dataset ${path}: ${(e as Error).message}`);
  }
  return st.isDirectory() ? folderDataset(path, o) : idxDataset(path, o);
}
