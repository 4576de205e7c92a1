// The projector and predictor MLPs: Linear, then (LayerNorm, GELU, Linear)
// repeated; no norm after the last Linear and no BatchNorm anywhere. Children
// are numbered like torch.nn.Sequential, so the keys match the authors'
// (head.{0,3,6} Linear, head.{1,4} LayerNorm; predictor.{0,3}, predictor.1).
import { Sequential } from '../nn/sequential';
import { Linear } from '../nn/linear';
import { LayerNorm } from '../nn/layer-norm';
import { GELU } from '../nn/activation';
import type { TensorModule } from '../nn/module';
import type { Generator } from '../runtime/generator';
import { positiveInt } from '../checks';

export function mlpHead(inDim: number, hiddenDim: number, outDim: number, numLayers: number, generator?: Generator): Sequential {
  positiveInt(numLayers, '"numLayers" of mlpHead');
  const layers: TensorModule[] = [];
  for (let i = 0; i < numLayers; i++) {
    const last = i === numLayers - 1;
    layers.push(new Linear(i === 0 ? inDim : hiddenDim, last ? outDim : hiddenDim, { generator }));
    // The heads' LayerNorms keep PyTorch's default eps (1e-5), unlike the encoder's 1e-6.
    if (!last) layers.push(new LayerNorm(hiddenDim), new GELU());
  }
  return new Sequential(...layers);
}

/** Projector on the encoders: D -> hidden -> hidden -> out (3 layers by default). */
export function projector(dim: number, hiddenDim = 4096, outDim = 256, numLayers = 3, generator?: Generator): Sequential {
  return mlpHead(dim, hiddenDim, outDim, numLayers, generator);
}

/** Predictor on the student only: out -> hidden -> out (2 layers by default). */
export function predictor(outDim = 256, hiddenDim = 4096, numLayers = 2, generator?: Generator): Sequential {
  return mlpHead(outDim, hiddenDim, outDim, numLayers, generator);
}
