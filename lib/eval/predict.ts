// Inference with a fine-tuned classifier: the top-k classes of every image of
// a dataset, in order, through the evaluation transform only (the same
// loader and normalisation as embedding), written as JSON lines.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { noGrad } from '../autograd';
import { withPackedLinears } from '../nn/pack-for-inference';
import { DataLoader } from '../data/loader';
import { openDataset, type ImageDataset } from '../data/dataset';
import { normalizeImages, type Normalization } from '../data/preprocess';
import { writeFileAtomic } from '../io/fs';
import { scope } from '../tensor/scope';
import type { Device } from '../tensor/device';
import type { Tensor } from '../tensor/tensor';
import { describe } from '../tensor/dtype';
import { intInRange, positiveInt } from '../checks';
import type { VitClassifier } from '../nn/vit-classifier';
import { loadClassifier } from './classifier-checkpoint';

/** Fashion-MNIST's classes in label order (Xiao et al. 2017), the names of this project's IDX recipes. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

/**
 * Class names for a labelled dataset: a folder's sub-folders, or for an IDX
 * file with labels in 0..9 Fashion-MNIST's names (the IDX data this project
 * trains on); null when unknown. The fine-tuning run stores them in the
 * classifier checkpoint.
 */
export function datasetClassNames(data: ImageDataset): string[] | null {
  if (data.classes !== null) return [...data.classes];
  if (data.kind === 'idx' && data.labels !== null && data.labels.every((l) => l >= 0 && l < FASHION_MNIST_CLASSES.length)) return [...FASHION_MNIST_CLASSES];
  return null;
}

export interface ClassScore {
  class: number;
  /** The class name, or null when the checkpoint has none. */
  name: string | null;
  probability: number;
}

export interface Prediction {
  /** Dataset index of the image. */
  index: number;
  /** The image file; absent for IDX items. */
  file?: string;
  /** The true class where the dataset is labelled. */
  label?: number;
  /** Best first. */
  top: ClassScore[];
}

export interface PredictOptions {
  /** Classes per image (default 5, at most the number of classes). */
  topK?: number;
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Where the model lives; batches are moved there (default 'cpu'). */
  device?: Device;
  /** Names of the classes in label order (default: none). */
  classes?: readonly string[] | null;
  /** Per-channel statistics (default: defaultNormalization of the dataset's channels). */
  mean?: number[];
  std?: number[];
  /** Called after every batch with the images done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Packed Linear layers while predicting (see EmbedOptions.packWeights); default true. */
  packWeights?: boolean;
}

/** Softmax probabilities and top-k classes of every image, in dataset order, with the model in eval mode. */
export async function predictDataset(model: VitClassifier, data: ImageDataset, options: PredictOptions = {}): Promise<Prediction[]> {
  const topK = Math.min(intInRange(options.topK ?? 5, '"topK" of predict', 1, 100_000), model.numClasses);
  const classes = options.classes ?? null;
  if (classes !== null && classes.length !== model.numClasses) {
    throw new RangeError(`Expected ${model.numClasses} class names (one per output of the classifier) but received ${classes.length}`);
  }
  const [h, w] = model.config.encoder.imgSize;
  if (data.size !== h || data.size !== w || data.channels !== model.config.encoder.inChans) {
    throw new RangeError(`Expected images of ${h} x ${w} with ${model.config.encoder.inChans} channel(s) for this classifier but the dataset gives ${data.size} x ${data.size} with ${data.channels}`);
  }
  const loader = new DataLoader(data, { mode: 'eval', batchSize: positiveInt(options.batchSize ?? 256, '"batchSize" of predict'), device: options.device ?? 'cpu' });
  const norm: Partial<Normalization> = { ...(options.mean ? { mean: options.mean } : {}), ...(options.std ? { std: options.std } : {}) };
  const out: Prediction[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    await withPackedLinears(model, options.packWeights ?? true, async () => {
      for await (const batch of loader.batches()) {
        try {
          const { probs, ids } = noGrad(() => scope(() => {
            const p = model.forward(normalizeImages(batch.images, norm)).float().softmax(-1);
            const top = p.topk(topK, -1);
            return { probs: top.values.cpu().toTypedArray<'float32'>(), ids: top.indices.cpu().toTypedArray<'int64'>() };
          }));
          const labels = batch.labels === null ? null : scope(() => (batch.labels as Tensor).cpu().toTypedArray<'int64'>());
          batch.indices.forEach((index, row) => {
            const top: ClassScore[] = [];
            for (let j = 0; j < topK; j++) {
              const c = Number(ids[row * topK + j]);
              top.push({ class: c, name: classes === null ? null : (classes[c] as string), probability: probs[row * topK + j] as number });
            }
            out.push({
              index,
              ...(data.files === null ? {} : { file: data.files[index] as string }),
              ...(labels === null ? {} : { label: Number(labels[row]) }),
              top,
            });
          });
          options.onProgress?.(out.length, data.count);
        } finally {
          batch.images.dispose();
          batch.labels?.dispose();
        }
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return out;
}

export interface PredictFileOptions extends Omit<PredictOptions, 'classes' | 'device'> {
  /** A classifier written by saveClassifier (fine-tuning). */
  checkpoint: string;
  /** An IDX file, an image folder or an image file. */
  images: string;
  /** The output .jsonl file (written atomically). */
  out: string;
  device?: string;
}

export interface PredictFileResult {
  count: number;
  out: string;
  seconds: number;
  /** Top-1 accuracy where the images are labelled, else null. */
  accuracy: number | null;
}

/**
 * `extrema predict`: one JSON line per image, {index, file?, label?, top:
 * [{class, name, probability}]}. Class names come from the checkpoint; a
 * checkpoint without them gets Fashion-MNIST's for IDX images when it has 10
 * classes. Images are read at the classifier's size and channels; the
 * normalisation is the one stored with the checkpoint ("normalization"
 * metadata, {mean, std}) or the default for its channels.
 */
export async function predictToFile(o: PredictFileOptions): Promise<PredictFileResult> {
  const start = Date.now();
  for (const key of ['checkpoint', 'images', 'out'] as const) {
    if (typeof o?.[key] !== 'string' || o[key].length === 0) throw new TypeError(`Expected a path for "${key}" of predict but received ${describe(o?.[key])}`);
  }
  const { model, classes, metadata, extra } = loadClassifier(o.checkpoint, { device: o.device });
  for (const t of extra.values()) t.dispose();
  try {
    const enc = model.config.encoder;
    const data = openDataset(o.images, { size: enc.imgSize[0], channels: enc.inChans as 1 | 3 });
    const names = classes ?? (data.kind === 'idx' && model.numClasses === FASHION_MNIST_CLASSES.length ? [...FASHION_MNIST_CLASSES] : null);
    const stored = storedNormalization(o.checkpoint, metadata.normalization);
    const preds = await predictDataset(model, data, {
      ...o, classes: names, device: o.device ?? 'cpu', mean: o.mean ?? stored.mean, std: o.std ?? stored.std,
    });
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    writeFileAtomic(o.out, Buffer.from(preds.map((p) => `${JSON.stringify(p)}\n`).join('')));
    const labelled = preds.filter((p) => p.label !== undefined);
    const accuracy = labelled.length === 0 ? null : labelled.filter((p) => p.top[0]?.class === p.label).length / labelled.length;
    return { count: preds.length, out: o.out, seconds: (Date.now() - start) / 1000, accuracy };
  } finally {
    model.dispose();
  }
}

/** The {mean, std} a fine-tuning run may store under "normalization"; {} when absent. */
export function storedNormalization(file: string, text: string | undefined): { mean?: number[]; std?: number[] } {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: the "normalization" metadata is not valid JSON (${(e as Error).message})`);
  }
  const list = (x: unknown) => x === undefined || (Array.isArray(x) && x.every((n) => typeof n === 'number'));
  if (typeof v !== 'object' || v === null || !list((v as { mean?: unknown }).mean) || !list((v as { std?: unknown }).std)) {
    throw new Error(`${file}: expected {"mean": [numbers], "std": [numbers]} in the "normalization" metadata but received ${text}`);
  }
  return v as { mean?: number[]; std?: number[] };
}
