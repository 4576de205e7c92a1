// The projector and predictor MLPs: Linear, then (norm, GELU, Linear)
// repeated; no norm after the last Linear. The norm is the authors' LayerNorm
// by default, or BatchNorm1d (BYOL's original heads, a deviation from the
// authors: see headNorm in ./config). Children are numbered like
// torch.nn.Sequential, so the keys match the authors' (head.{0,3,6} Linear,
// head.{1,4} norm; predictor.{0,3}, predictor.1); BatchNorm adds its running
// statistics as buffers under torch's names.
import { Sequential } from '../nn/sequential';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layer-norm';
import { BatchNorm1d } from '../nn/batch-norm';
import { GELU } from '../nn/activation';
import type { TensorModule } from '../nn/module';
import type { Generator } from '../runtime/generator';
import { positiveInt, oneOf } from '../checks';
import { HEAD_NORMS, type HeadNorm } from './config';

export function mlpHead(inDim: number, hiddenDim: number, outDim: number, numLayers: number, generator?: Generator, norm: HeadNorm = 'layer'): Sequential {
  positiveInt(numLayers, '"numLayers" of mlpHead');
  oneOf(norm, '"norm" of mlpHead', HEAD_NORMS);
  const layers: TensorModule[] = [];
  for (let i = 0; i < numLayers; i++) {
    const last = i === numLayers - 1;
    layers.push(new Linear(i === 0 ? inDim : hiddenDim, last ? outDim : hiddenDim, { generator }));
    // Both norms keep PyTorch's default eps (1e-5), unlike the encoder's LayerNorm 1e-6.
    if (!last) layers.push(norm === 'batch' ? new BatchNorm1d(hiddenDim) : new LayerNorm(hiddenDim), new GELU());
  }
  return new Sequential(...layers);
}

/** Projector on the encoders: D -> hidden -> hidden -> out (3 layers by default). */
export function projector(dim: number, hiddenDim = 4096, outDim = 256, numLayers = 3, generator?: Generator, norm: HeadNorm = 'layer'): Sequential {
  return mlpHead(dim, hiddenDim, outDim, numLayers, generator, norm);
}

/** Predictor on the student only: out -> hidden -> out (2 layers by default). */
export function predictor(outDim = 256, hiddenDim = 4096, numLayers = 2, generator?: Generator, norm: HeadNorm = 'layer'): Sequential {
  return mlpHead(outDim, hiddenDim, outDim, numLayers, generator, norm);
}
