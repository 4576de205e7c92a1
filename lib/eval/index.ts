// Evaluation of learned features.
export { knnPredict, knnAccuracy, type KnnOptions, type KnnAccuracy } from './knn';
export { classAttentionMaps, attentionGridPng, type AttentionGridOptions } from './attention-maps';
export { attentionFigure, type AttentionFigureOptions } from './attention-maps';
export { classifierFrom, saveClassifier, loadClassifier, CLASSIFIER_FORMAT, type ClassifierFromOptions, type SaveClassifierInfo, type LoadedClassifier } from './classifier-checkpoint';
export { predictDataset, predictToFile, datasetClassNames, FASHION_MNIST_CLASSES, type Prediction, type ClassScore, type PredictOptions, type PredictFileOptions, type PredictFileResult } from './predict';
export { embedDataset, embedToFile, type EmbedOptions, type Embedding, type EmbedFileOptions, type EmbedFileResult } from './embed';
export {
  linearProbe, linearProbeHead, trainLinearHead, evaluateHead, shuffledBatches, probeLr, HeadTrainer, confusionMatrixPng, matchTestClasses,
  saveLinearHead, loadLinearHead, HEAD_FORMAT, type HeadTrainingOptions, type ProbeMetrics, type ProbeMode, type LinearProbeOptions, type LinearProbeResult,
} from './linprobe';
