import { Module } from './module';
import { conv2d } from '../tensor/functional';
import { empty } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import type { Generator } from '../runtime/generator';
import { defaultWeightInit_, uniform_ } from './init';
import { positiveInt } from '../checks';

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
    const maps = this.proj.forward(images);
    const tokens = maps.flatten(2).transpose(1, 2);
    maps.dispose();
    return tokens;
  }
}

/** The convolution itself, so its weights are named proj.weight / proj.bias as in timm. */
export class PatchProjection extends Module {
  weight: Tensor;
  bias: Tensor;

  constructor(readonly inChans: number, readonly outChans: number, readonly patchSize: number, generator?: Generator) {
    super();
    this.weight = this.registerParameter('weight', defaultWeightInit_(empty([outChans, inChans, patchSize, patchSize]), generator));
    const bound = 1 / Math.sqrt(inChans * patchSize * patchSize);
    this.bias = this.registerParameter('bias', uniform_(empty([outChans]), -bound, bound, generator));
  }

  forward(images: Tensor): Tensor {
    return conv2d(images, this.weight, this.bias, { stride: this.patchSize });
  }
}
