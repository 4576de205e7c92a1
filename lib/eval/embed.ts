// Embedding: an encoder's instance features (the class token after the final
// norm) for every item of a dataset, in order, through the evaluation
// transform only. The kNN monitor, `extrema knn`, `extrema embed` and the
// evaluations that follow all embed through embedDataset.
import * as path from 'node:path';
import { noGrad } from '../autograd';
import { DataLoader } from '../data/loader';
import { openDataset, type ImageDataset } from '../data/dataset';
import { defaultNormalization, normalizeImages, type Normalization } from '../data/preprocess';
import { loadEncoder } from '../extrema/checkpoint';
import { saveSafetensors } from '../io/safetensors';
import { empty, fromTypedArray } from '../tensor/creation';
import { assertDevice, type Device } from '../tensor/device';
import { cat } from '../tensor/functional';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { VisionTransformer } from '../nn/vision-transformer';
import { withPackedLinears } from '../nn/pack-for-inference';

export interface EmbedOptions {
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Where the encoder lives; batches are moved there (default 'cpu'). */
  device?: Device;
  /** Per-channel statistics (default: defaultNormalization of the dataset's channels). */
  mean?: number[];
  std?: number[];
  /** Stop at an image that fails to decode (default true); false reports it to onSkip and leaves it out. */
  strict?: boolean;
  onSkip?: (name: string, error: Error) => void;
  /** Called after every batch with the items done so far (embedded or skipped) and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Items decoded at once (default 8). */
  concurrency?: number;
  /** false: the features before the encoder's final LayerNorm (see EncodeOptions.instanceNorm); default true. */
  instanceNorm?: boolean;
  /**
   * Run the Linear layers through the packed product while embedding
   * (nn.withPackedLinears; CPU float32 only, the same values to float
   * rounding, about 20% faster). Default true; false gives ATen's linear,
   * as PyTorch's eager forward computes it.
   */
  packWeights?: boolean;
}

export interface Embedding {
  /** float32 [N, D] on the embedding device, one row per embedded item in dataset order. */
  features: Tensor;
  /** int64 [N] labels of the embedded items, or null for unlabelled data. */
  labels: Tensor | null;
  /** Dataset index of each row (all of 0..count-1 unless files were skipped). */
  indices: Int32Array;
  /** Names of the items left out (strict: false). */
  skipped: string[];
  /** Disposes features and labels. */
  dispose(): void;
}

/** The encoder's instance features of every item of the dataset, in order, with the encoder in eval mode. */
export async function embedDataset(encoder: VisionTransformer, data: ImageDataset, options: EmbedOptions = {}): Promise<Embedding> {
  const device = options.device ?? 'cpu';
  const skipped: string[] = [];
  const loader = new DataLoader(data, {
    mode: 'eval', batchSize: options.batchSize ?? 256, device, strict: options.strict ?? true, concurrency: options.concurrency ?? 8,
    onSkip: (name, e) => {
      skipped.push(name);
      options.onSkip?.(name, e);
    },
  });
  const norm: Partial<Normalization> = { ...(options.mean ? { mean: options.mean } : {}), ...(options.std ? { std: options.std } : {}) };
  const width = encoder.embedDim;
  // Rows are written into one preallocated tensor, so the features are never held twice.
  const all = empty([data.count, width], { device }).keep();
  const labels: Tensor[] = [];
  const indices: number[] = [];
  const wasTraining = encoder.training;
  encoder.eval();
  try {
    return await withPackedLinears(encoder, options.packWeights ?? true, async () => {
      let rows = 0;
      for await (const batch of loader.batches()) {
        try {
          noGrad(() => scope(() => {
            const { instance } = encoder.encode(normalizeImages(batch.images, norm), { instanceNorm: options.instanceNorm });
            all.narrow(0, rows, batch.indices.length).copy_(instance);
          }));
          if (batch.labels !== null) labels.push(batch.labels.keep());
          rows += batch.indices.length;
          indices.push(...batch.indices);
          options.onProgress?.(indices.length + skipped.length, data.count);
        } finally {
          batch.images.dispose();
        }
      }
      const features = rows === data.count ? all : scope(() => all.narrow(0, 0, rows).clone()).keep();
      if (features !== all) all.dispose();
      const labelTensor = data.labels === null ? null
        : labels.length === 0 ? empty([0], { dtype: 'int64', device }).keep() : cat(labels, 0).keep();
      return {
        features, labels: labelTensor, indices: Int32Array.from(indices), skipped,
        dispose() {
          features.dispose();
          labelTensor?.dispose();
        },
      };
    });
  } catch (e) {
    all.dispose();
    throw e;
  } finally {
    for (const t of labels) t.dispose();
    encoder.train(wasTraining);
  }
}

export interface EmbedFileOptions extends Omit<EmbedOptions, 'device'> {
  /** An ExtreMA checkpoint: this project's .safetensors or the authors' .pth. */
  checkpoint: string;
  /** An IDX file or an image folder (or image file). */
  images: string;
  /** The output .safetensors file. */
  out: string;
  device?: string;
  /** Attention heads of a .pth model (default width / 64). */
  heads?: number;
  /** The teacher (default) or the student encoder. */
  which?: 'teacher' | 'student';
}

export interface EmbedFileResult {
  count: number;
  width: number;
  out: string;
  skipped: string[];
  seconds: number;
}

/**
 * `extrema embed`: features of every image of an IDX file or image folder,
 * in dataset order, saved as float32 [N, D] "features" in a safetensors file
 * (with int64 "labels" for labelled data, and int64 "indices", the dataset
 * index of each row, when files were skipped).
 */
export async function embedToFile(o: EmbedFileOptions): Promise<EmbedFileResult> {
  const started = performance.now();
  const device = assertDevice(o.device ?? 'cpu', '--device');
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, device, which: o.which });
  try {
    const [h, w] = config.encoder.imgSize;
    if (h !== w) throw new RangeError(`embed supports square model inputs; this model takes ${h}x${w}`);
    const channels = config.encoder.inChans;
    if (channels !== 1 && channels !== 3) throw new RangeError(`embed reads images with 1 or 3 channels; this model takes ${channels}`);
    for (const [name, v] of [['--mean', o.mean], ['--std', o.std]] as const) {
      if (v !== undefined && v.length !== channels) throw new RangeError(`Expected ${channels} values for ${name} (the model has ${channels} channels) but received ${v.length}`);
    }
    const norm = { ...defaultNormalization(channels), ...(o.mean ? { mean: o.mean } : {}), ...(o.std ? { std: o.std } : {}) };
    const data = openDataset(o.images, { size: h, channels });
    const embedding = await embedDataset(encoder, data, { ...o, ...norm, device });
    try {
      const features = embedding.features.to({ device: 'cpu', dtype: 'float32' });
      const tensors: Record<string, Tensor> = { features };
      if (embedding.labels !== null) tensors.labels = embedding.labels.to({ device: 'cpu' });
      if (embedding.skipped.length > 0) tensors.indices = fromTypedArray(BigInt64Array.from(embedding.indices, BigInt), [embedding.indices.length]);
      try {
        saveSafetensors(o.out, tensors, {
          checkpoint: path.resolve(o.checkpoint), images: path.resolve(o.images), encoder: o.which ?? 'teacher',
          mean: JSON.stringify(norm.mean), std: JSON.stringify(norm.std), size: String(h),
          ...(embedding.skipped.length > 0 ? { skipped: JSON.stringify(embedding.skipped) } : {}),
        });
      } finally {
        for (const t of Object.values(tensors)) t.dispose();
      }
      return { count: embedding.indices.length, width: config.encoder.embedDim, out: o.out, skipped: embedding.skipped, seconds: (performance.now() - started) / 1000 };
    } finally {
      embedding.dispose();
    }
  } finally {
    encoder.dispose();
  }
}
