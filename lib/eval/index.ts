// Evaluation of learned features.
export { knnPredict, knnAccuracy, type KnnOptions, type KnnAccuracy } from './knn';
export { classAttentionMaps, attentionGridPng, type AttentionGridOptions } from './attention-maps';
export { attentionFigure, type AttentionFigureOptions } from './attention-maps';
export { embedDataset, embedToFile, type EmbedOptions, type Embedding, type EmbedFileOptions, type EmbedFileResult } from './embed';
