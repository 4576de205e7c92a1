// `extrema attention`: a PNG grid of images beside their class-attention maps.
import { loadEncoder } from '../extrema/checkpoint';
import { openImageSource, imageBatches } from '../data/source';
import { defaultNormalization } from '../data/preprocess';
import { classAttentionMaps, attentionGridPng } from '../eval/attention-maps';
import { writeFileAtomic } from '../io/safetensors';
import { tensor } from '../tensor/creation';
import { scope } from '../tensor/scope';

export interface AttentionOptions {
  checkpoint: string;
  images: string;
  out: string;
  count?: number;
  block?: string;
  heads?: number;
  which?: 'teacher' | 'student';
  columns?: number;
  device?: string;
}

export async function attentionFigure(o: AttentionOptions): Promise<{ out: string; count: number }> {
  if (!o.out.toLowerCase().endsWith('.png')) throw new TypeError(`Expected a .png file for --out but received "${o.out}"`);
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, which: o.which, device: o.device });
  try {
    const size = config.encoder.imgSize[0];
    const channels = config.encoder.inChans === 1 ? 1 : 3;
    const source = openImageSource(o.images, { channels });
    const count = Math.min(o.count ?? 16, source.count);
    const { mean, std } = defaultNormalization(channels);
    // Read pixels in [0, 1] (mean 0, std 1) so the figure shows the images as they are.
    const identity = { mean: new Array<number>(channels).fill(0), std: new Array<number>(channels).fill(1) };
    for await (const batch of imageBatches(source, { size, batchSize: count, channels, ...identity, end: count, device: o.device })) {
      const maps = scope(() => {
        const m = tensor(mean, { device: o.device }).view(1, -1, 1, 1);
        const s = tensor(std, { device: o.device }).view(1, -1, 1, 1);
        return classAttentionMaps(encoder, batch.images.sub(m).div(s), o.block);
      });
      const png = await attentionGridPng(batch.images, maps, { columns: o.columns ?? 8 });
      maps.dispose();
      batch.images.dispose();
      writeFileAtomic(o.out, png);
    }
    return { out: o.out, count };
  } finally {
    encoder.dispose();
  }
}
