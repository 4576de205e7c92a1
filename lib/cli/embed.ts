// `extrema embed`: the teacher's instance features (after the final norm) for
// every image of an IDX file or an image folder, in source order, written to
// a safetensors file under "features" (float32, N x width).
import * as path from 'node:path';
import { loadEncoder } from '../extrema/checkpoint';
import { openImageSource, imageBatches } from '../data/source';
import { defaultNormalization } from '../data/preprocess';
import { noGrad } from '../autograd';
import { fromTypedArray } from '../tensor/creation';
import { saveSafetensors } from '../io/safetensors';
import { assertDevice } from '../tensor/device';
import { ProgressBar } from './progress';

export interface EmbedOptions {
  checkpoint: string;
  images: string;
  out: string;
  batchSize?: number;
  device?: string;
  mean?: number[];
  std?: number[];
  heads?: number;
  which?: 'teacher' | 'student';
  quiet?: boolean;
}

export interface EmbedResult {
  count: number;
  width: number;
  out: string;
  seconds: number;
}

export async function embed(o: EmbedOptions): Promise<EmbedResult> {
  const started = performance.now();
  const device = assertDevice(o.device ?? 'cpu', '--device');
  const batchSize = o.batchSize ?? 64;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`Expected a positive integer for --batch-size but received ${String(o.batchSize)}`);
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, device, which: o.which });
  try {
    const [h, w] = config.encoder.imgSize;
    if (h !== w) throw new RangeError(`embed supports square model inputs; this model takes ${h}x${w}`);
    const channels = config.encoder.inChans;
    if (channels !== 1 && channels !== 3) throw new RangeError(`embed reads images with 1 or 3 channels; this model takes ${channels}`);
    const norm = defaultNormalization(channels);
    const mean = o.mean ?? norm.mean;
    const std = o.std ?? norm.std;
    if (mean.length !== channels || std.length !== channels) {
      throw new RangeError(`Expected ${channels} values for --mean and --std (the model has ${channels} channels) but received ${mean.length} and ${std.length}`);
    }
    const source = openImageSource(o.images, { channels });
    if (source.count === 0) throw new RangeError(`No images found in ${o.images}`);
    const width = config.encoder.embedDim;
    const features = new Float32Array(source.count * width);
    const bar = o.quiet ? null : new ProgressBar({ total: source.count, label: `embed ${path.basename(o.images)}`, unit: 'img' });
    for await (const batch of imageBatches(source, { size: h, batchSize, channels, mean, std, device })) {
      const rows = noGrad(() => {
        const out = encoder.encode(batch.images);
        const data = out.instance.to({ device: 'cpu', dtype: 'float32' });
        const values = data.toTypedArray<'float32'>();
        data.dispose();
        out.instance.dispose();
        out.tokens.dispose();
        return values;
      });
      batch.images.dispose();
      features.set(rows, batch.index * width);
      bar?.tick(batch.count);
    }
    bar?.finish();
    const t = fromTypedArray(features, [source.count, width]);
    try {
      saveSafetensors(o.out, { features: t }, {
        checkpoint: path.resolve(o.checkpoint), images: path.resolve(o.images), encoder: o.which ?? 'teacher',
        mean: JSON.stringify(mean), std: JSON.stringify(std), size: String(h),
      });
    } finally {
      t.dispose();
    }
    return { count: source.count, width, out: o.out, seconds: (performance.now() - started) / 1000 };
  } finally {
    encoder.dispose();
  }
}
