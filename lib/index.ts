// Public API of the extrema package.
export { Tensor, isTensor, type Shape, type NestedArray, type ToOptions } from './tensor/tensor';
export { type DType, type FloatDType, type IntDType, DTYPES, isDType, itemSize, isFloating, type TypedArrayOf, type AnyTypedArray } from './tensor/dtype';
export { type Device } from './tensor/device';
export { type Scalar, type MemoryFormat } from './tensor/op-runtime';
export {
  zeros, ones, empty, full, eye, arange, linspace, rand, randn, randint, randperm,
  zerosLike, onesLike, fullLike, emptyLike, randLike, randnLike, fromTypedArray, tensor, scalarTensor,
  type CreateOptions, type RandomOptions,
} from './tensor/creation';
export { slice, type IndexSpec, type Slice } from './tensor/indexing';
export { scope, keep, scopeDepth } from './tensor/scope';
export {
  cat, stack, where, einsum, matmul, linear, conv2d, softmax, logSoftmax, layerNorm, gelu, relu, dropout,
  scaledDotProductAttention, normalize, crossEntropy, mseLoss, cosineSimilarity, oneHot,
  type Conv2dOptions, type AttentionOptions, type CrossEntropyOptions, type Reduction,
} from './tensor/functional';
export * as functional from './tensor/functional';
export {
  packLinearWeight, packedLinear, packedLinearAvailable, packedKernelAvailable, defaultPackedKernel, packedKernelOf, PACKED_KERNELS,
  type PackedActivation, type PackedKernel,
} from './tensor/packed-linear';
export { smallAttention, smallAttentionAvailable, smallAttentionFits, SMALL_ATTENTION_MAX_KEYS, SMALL_ATTENTION_MAX_HEAD_DIM } from './tensor/small-attention';
export { rowLayerNorm, rowLayerNormAvailable } from './tensor/row-layer-norm';
export { inferenceKernels, type InferenceKernels } from './tensor/inference-kernels';
/** Every ATen operator overload, generated from libtorch's schemas. */
export * as aten from './tensor/ops.generated';
export * as autograd from './autograd';
export { noGrad, enableGrad, inferenceMode, isGradEnabled, setGradEnabled } from './autograd';
export { Generator, manualSeed } from './runtime/generator';
export { DeviceGraph, graphsSupported } from './runtime/graph';
export { Trace, TraceRefusedError } from './runtime/trace';
export { cuda, synchronize, setNumThreads, getNumThreads, setNumInteropThreads, memory, versions, autocast, isAutocastEnabled } from './runtime/device-runtime';
export { saveSafetensors, loadSafetensors, serializeSafetensors, parseSafetensors, SafetensorsError, type SafetensorsContent } from './io/safetensors';
export { writeFileAtomic } from './io/fs';
export * as data from './data';
export { loadIdxImages, loadIdxLabels, listImageFiles, listClassFolder, decodeImage, openDataset, DataLoader, normalizeImages, toNormalizedTensor, IMAGENET_MEAN, IMAGENET_STD, defaultNormalization } from './data';
export * as nn from './nn';
export * from './extrema';
export * as serve from './serve';
export { Encoder, ClosedError, QueueFullError, TimeoutError, InputError, NotAClassifierError, type EncoderOptions, type EmbedRequestOptions, type ClassifyRequestOptions, type Classification, type EncoderStats } from './serve';
export { loadPth, stateDictFromPth, flattenStateDict, PthError, type LoadPthOptions, type PthCheckpoint, type StateDictOptions } from './io/pth';
export * as optim from './optim';
export { AdamW, paramGroupsForDecay, scaledLr, warmupCosine, cosine, clipGradNorm, GradScaler, type AdamWOptions, type AdamWStateDict, type ParamGroup, type GradScalerOptions, type GradScalerState } from './optim';
export * as evaluation from './eval';
export { knnPredict, knnAccuracy, embedDataset, embedToFile, attentionFigure, type KnnOptions, type Embedding } from './eval';
export * as distributed from './distributed';
export * as train from './train';
export { pretrain, pretrainConfig, TrainingError } from './train';
