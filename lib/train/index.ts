// Pretraining: the recipe config, the run loop, its log, checkpoints, kNN monitor and plots.
export { pretrainConfig, PRESETS, type PretrainConfig, type PretrainConfigInput, type Precision } from './config';
export { pretrain, TrainingError, CHECKPOINT_FILE, type PretrainHooks, type PretrainResult } from './pretrain';
export { RunLog, type LogRecord } from './log';
export { saveTrainingCheckpoint, loadTrainingCheckpoint, type RunPosition, type TrainingState } from './state';
export { embedDataset, knnMonitor, openKnnSets, type KnnSets } from './knn-monitor';
export { lineChartSvg, writeChart, niceTicks, type LineChartOptions, type ChartSeries } from './plot';
export { writeRunPlots } from './run-plots';
