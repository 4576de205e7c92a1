// Evaluation of learned features.
export { knnPredict, knnAccuracy, type KnnOptions, type KnnAccuracy } from './knn';
export { classAttentionMaps, attentionGridPng, type AttentionGridOptions } from './attention-maps';
