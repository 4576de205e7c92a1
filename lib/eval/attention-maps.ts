// Where the instance token looks: the class-attention weights of the last
// class-attention block (or any named block), averaged over heads, laid out
// on the patch grid, and drawn over the images as a heat map grid (PNG).
import sharp from 'sharp';
import { noGrad } from '../autograd';
import { openDataset } from '../data/dataset';
import { DataLoader, disposeBatch } from '../data/loader';
import { normalizeImages } from '../data/preprocess';
import { loadEncoder } from '../extrema/checkpoint';
import { writeFileAtomic } from '../io/fs';
import { scope } from '../tensor/scope';
import * as aten from '../tensor/ops.generated';
import type { Tensor } from '../tensor/tensor';
import type { VisionTransformer } from '../nn/vision-transformer';

/**
 * Attention of the class token over the patches, [B, gridH, gridW], each map
 * summing to the attention mass on patches (the class token's own share is
 * left out). `block` defaults to the last class-attention block; for a
 * self-attention block ('blocks.i') the maps are the mean attention each
 * patch receives.
 */
export function classAttentionMaps(encoder: VisionTransformer, images: Tensor, block?: string): Tensor {
  const name = block ?? (encoder.blocks_token.length > 0 ? `blocks_token.${encoder.blocks_token.length - 1}` : `blocks.${encoder.blocks.length - 1}`);
  const [gh, gw] = encoder.patch_embed.grid;
  return noGrad(() => scope(() => {
    const out = encoder.encode(images, { attentionOf: name });
    const weights = (out.attention as Tensor).mean(1); // [B, queries, keys]
    const keys = weights.size(-1);
    const patches = gh * gw;
    // Class-attention keys are [cls, patches]; a class-token ViT has the same layout; mean pooling has patches only.
    const onPatches = weights.narrow(-1, keys - patches, patches).mean(1);
    return onPatches.reshape(images.size(0), gh, gw);
  }));
}

/** The 'inferno'-like ramp used for the heat: black -> purple -> orange -> yellow. */
const RAMP: [number, number, number][] = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];

function heatColor(v: number): [number, number, number] {
  const x = Math.min(Math.max(v, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  const a = RAMP[i] as [number, number, number];
  const b = RAMP[i + 1] as [number, number, number];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

export interface AttentionGridOptions {
  /** Pixels per image cell (default: the image size, at least 96). */
  cell?: number;
  /** Images per row (default 8). */
  columns?: number;
  /** Heat opacity over the image (default 0.6). */
  alpha?: number;
}

/**
 * A PNG of image/heat-map pairs: for each image, the image itself (gray or
 * RGB, pixels in [0, 1]) and next to it the image under its attention map
 * (each map scaled to its own maximum, bilinear up-sampled).
 */
export async function attentionGridPng(pixels: Tensor /* [B, C, H, W] in [0, 1] */, maps: Tensor /* [B, gh, gw] */, options: AttentionGridOptions = {}): Promise<Buffer> {
  const [b, c, h] = pixels.shape as [number, number, number, number];
  const cell = options.cell ?? Math.max(96, h);
  const columns = Math.min(options.columns ?? 8, b);
  const alpha = options.alpha ?? 0.6;
  const { img, heat } = noGrad(() => scope(() => {
    const rgb = c === 1 ? pixels.expand(b, 3, pixels.size(2), pixels.size(3)) : pixels;
    const resized = aten.upsample_bilinear2d_vec(rgb.float(), [cell, cell], false, null).clamp(0, 1);
    const m = maps.unsqueeze(1).float();
    const scaled = m.div(m.amax([2, 3], true).clampMin(1e-12));
    const up = aten.upsample_bilinear2d_vec(scaled, [cell, cell], false, null).clamp(0, 1);
    return { img: resized.permute(0, 2, 3, 1).contiguous(), heat: up.squeeze(1).contiguous() };
  }));
  const imgData = img.toTypedArray<'float32'>();
  const heatData = heat.toTypedArray<'float32'>();
  img.dispose();
  heat.dispose();
  const rows = Math.ceil(b / columns);
  const width = columns * 2 * cell;
  const height = rows * cell;
  const canvas = new Uint8Array(width * height * 3).fill(255);
  for (let n = 0; n < b; n++) {
    const x0 = (n % columns) * 2 * cell;
    const y0 = Math.floor(n / columns) * cell;
    for (let y = 0; y < cell; y++) {
      for (let x = 0; x < cell; x++) {
        const p = (n * cell * cell + y * cell + x);
        const [hr, hg, hb] = heatColor(heatData[p] as number);
        for (let k = 0; k < 3; k++) {
          const v = (imgData[p * 3 + k] as number) * 255;
          canvas[((y0 + y) * width + x0 + x) * 3 + k] = v;
          const heatK = k === 0 ? hr : k === 1 ? hg : hb;
          canvas[((y0 + y) * width + x0 + cell + x) * 3 + k] = (1 - alpha) * v + alpha * heatK;
        }
      }
    }
  }
  return sharp(Buffer.from(canvas.buffer), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export interface AttentionFigureOptions {
  /** This project's .safetensors or the authors' .pth. */
  checkpoint: string;
  /** An IDX file or an image folder: its first `count` images are drawn. */
  images: string;
  /** The output PNG. */
  out: string;
  /** Images (default 16). */
  count?: number;
  /** Block whose attention to draw (default: the last class-attention block). */
  block?: string;
  /** Attention heads of a .pth model (default width / 64). */
  heads?: number;
  which?: 'teacher' | 'student';
  /** Image pairs per row (default 8). */
  columns?: number;
  device?: string;
}

/** `extrema attention`: a PNG grid of the first images beside their class-attention maps. */
export async function attentionFigure(o: AttentionFigureOptions): Promise<{ out: string; count: number }> {
  if (!o.out.toLowerCase().endsWith('.png')) throw new TypeError(`Expected a .png file for --out but received "${o.out}"`);
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, which: o.which, device: o.device });
  try {
    const channels = config.encoder.inChans === 1 ? 1 : 3;
    const data = openDataset(o.images, { size: config.encoder.imgSize[0], channels });
    const count = Math.min(o.count ?? 16, data.count);
    const loader = new DataLoader(data, { mode: 'eval', batchSize: count, end: count, device: o.device });
    for await (const batch of loader.batches()) {
      try {
        const maps = scope(() => classAttentionMaps(encoder, normalizeImages(batch.images), o.block));
        const pixels = scope(() => batch.images.float().div(255));
        const png = await attentionGridPng(pixels, maps, { columns: o.columns ?? 8 });
        maps.dispose();
        pixels.dispose();
        writeFileAtomic(o.out, png);
      } finally {
        disposeBatch(batch);
      }
    }
    return { out: o.out, count };
  } finally {
    encoder.dispose();
  }
}
