import { Module } from './module';
import { conv2d } from '../tensor/functional';
import { packedLinear } from '../tensor/packed-linear';
import { empty } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { defaultWeightInit_, uniform_ } from './init';
import { positiveInt } from '../checks';
import { InferencePack, PackableModule } from './inference-pack';

export interface PatchEmbedOptions {
  imgSize: [number, number];
  patchSize: number;
  inChans: number;
  embedDim: number;
  generator?: Generator;
}

/** Non-overlapping patches -> tokens: Conv2d(kernel = stride = patch), flattened to [B, N, D] row-major. */
export class PatchEmbed extends Module {
  readonly imgSize: [number, number];
  readonly patchSize: number;
  readonly inChans: number;
  readonly embedDim: number;
  readonly grid: [number, number];
  readonly proj: PatchProjection;

  constructor(o: PatchEmbedOptions) {
    super();
    const [h, w] = o.imgSize;
    positiveInt(h, '"imgSize[0]" of PatchEmbed');
    positiveInt(w, '"imgSize[1]" of PatchEmbed');
    positiveInt(o.patchSize, '"patchSize" of PatchEmbed');
    positiveInt(o.inChans, '"inChans" of PatchEmbed');
    positiveInt(o.embedDim, '"embedDim" of PatchEmbed');
    if (h % o.patchSize !== 0 || w % o.patchSize !== 0) {
      throw new RangeError(`PatchEmbed: image size ${h}x${w} is not divisible by the patch size ${o.patchSize}`);
    }
    this.imgSize = [h, w];
    this.patchSize = o.patchSize;
    this.inChans = o.inChans;
    this.embedDim = o.embedDim;
    this.grid = [h / o.patchSize, w / o.patchSize];
    this.proj = this.registerModule('proj', new PatchProjection(o.inChans, o.embedDim, o.patchSize, o.generator));
  }

  get numPatches(): number {
    return this.grid[0] * this.grid[1];
  }

  forward(images: Tensor): Tensor {
    const shape = images.shape;
    const [h, w] = this.imgSize;
    if (shape.length !== 4 || shape[1] !== this.inChans || shape[2] !== h || shape[3] !== w) {
      throw new TypeError(`Expected images of shape [B, ${this.inChans}, ${h}, ${w}] but received [${shape.join(', ')}]`);
    }
    return this.proj.tokens(images, this.grid);
  }
}

/**
 * The convolution itself, so its weights are named proj.weight / proj.bias
 * as in timm. Packed for inference (nn.packForInference) it runs as what it
 * is, a linear map of each flattened patch, through the packed product: at a
 * few images oneDNN's convolution costs several times as much (0.07 ms of
 * the demo encoder's 3.9 ms batch-1 pass, BENCHMARKS.md).
 */
export class PatchProjection extends PackableModule {
  weight: Tensor;
  bias: Tensor;
  // [out, in, p, p] -> [out, in * p * p], the order tokens() flattens each patch in.
  protected readonly packed = new InferencePack(() => this.weight, (w) => w.reshape([this.outChans, -1]));

  constructor(readonly inChans: number, readonly outChans: number, readonly patchSize: number, generator?: Generator) {
    super();
    this.weight = this.registerParameter('weight', defaultWeightInit_(empty([outChans, inChans, patchSize, patchSize]), generator));
    const bound = 1 / Math.sqrt(inChans * patchSize * patchSize);
    this.bias = this.registerParameter('bias', uniform_(empty([outChans]), -bound, bound, generator));
  }

  /** Feature maps [B, out, H / p, W / p]: the convolution, packed or not. */
  forward(images: Tensor): Tensor {
    return conv2d(images, this.weight, this.bias, { stride: this.patchSize });
  }

  /** Tokens [B, gh * gw, out], row-major over the grid [gh, gw] of patches: the packed product when packed, else the convolution's maps flattened. */
  tokens(images: Tensor, grid: [number, number]): Tensor {
    const packed = this.packed.weightFor(images);
    if (packed === null) {
      const maps = this.forward(images);
      try {
        return maps.flatten(2).transpose(1, 2);
      } finally {
        maps.dispose();
      }
    }
    const [b, c] = images.shape as [number, number];
    const [gh, gw] = grid;
    const p = this.patchSize;
    // [B, C, gh, p, gw, p] -> [B, gh, gw, C, p, p] -> [B, gh * gw, C * p * p]
    const grouped = images.reshape([b, c, gh, p, gw, p]);
    const ordered = grouped.permute([0, 2, 4, 1, 3, 5]);
    const patches = ordered.reshape([b, gh * gw, c * p * p]);
    try {
      return packedLinear(patches, packed, this.bias);
    } finally {
      for (const t of [grouped, ordered, patches]) t.dispose();
    }
  }
}
