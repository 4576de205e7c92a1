// Model FLOPs of an ExtreMA training step, counted from the shapes (issue 10's
// MFU): 2 FLOPs per multiply-add of every linear, convolution and attention
// matmul; backward = 2 x forward for the student; the teacher runs forward
// only. Elementwise ops, norms, softmax and the optimizer are left out, so an
// MFU from these counts is a lower bound on the work the GPU does.
import type { ExtremaConfig } from '../lib/extrema';

/** Forward FLOPs of one encoder pass over `tokens` patch tokens (kept after masking) plus its projector, and the predictor when asked. */
function encoderFlops(c: ExtremaConfig, tokens: number, withPredictor: boolean): number {
  const e = c.encoder;
  const D = e.embedDim;
  const patches = (e.imgSize[0] / e.patchSize) * (e.imgSize[1] / e.patchSize);
  const hidden = e.mlpRatio * D;
  let f = 2 * patches * e.inChans * e.patchSize * e.patchSize * D; // patch embedding runs on every patch
  // self-attention blocks: qkv + proj (4D^2) and the MLP (2 D hidden) per token, QK^T and AV (2 T^2 D)
  f += e.depth * (2 * tokens * (4 * D * D + 2 * D * hidden) + 2 * 2 * tokens * tokens * D);
  // class-attention blocks: keys/values over T + 1 tokens, query, proj and MLP on the class token only
  f += e.classAttentionLayers * (2 * (tokens + 1) * 2 * D * D + 2 * (2 * D * D + 2 * D * hidden) + 2 * 2 * (tokens + 1) * D);
  const mlp = (dims: number[]) => dims.slice(1).reduce((s, d, i) => s + 2 * (dims[i] as number) * d, 0);
  const proj = [D, ...Array<number>(c.projectorLayers - 1).fill(c.projectorHiddenDim), c.projectorDim];
  f += mlp(proj);
  if (withPredictor) f += mlp([c.projectorDim, ...Array<number>(c.predictorLayers - 1).fill(c.predictorHiddenDim), c.projectorDim]);
  return f;
}

/** Model FLOPs of one training step at batch b: student forward + backward (3x) on every mask, teacher forward. */
export function modelFlops(c: ExtremaConfig, b: number): number {
  const e = c.encoder;
  const patches = (e.imgSize[0] / e.patchSize) * (e.imgSize[1] / e.patchSize);
  const kept = patches - Math.floor(patches * c.maskRatio);
  return 3 * b * c.numMasks * encoderFlops(c, kept, true) + b * encoderFlops(c, patches, false);
}

