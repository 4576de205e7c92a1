// Pretraining and fine-tuning: the recipe configs, the run loops, their log, checkpoints and kNN monitor (the plots are internal: ./plot, ./run-plots).
export { pretrainConfig, PRESETS, AUTHORS_HEADS, type PretrainConfig, type PretrainConfigInput, type Precision } from './config';
export { pretrain, TrainingError, CHECKPOINT_FILE, type PretrainHooks, type PretrainResult } from './pretrain';
export { RunLog, type LogRecord } from '../io/run-log';
export { saveTrainingCheckpoint, loadTrainingCheckpoint, type RunPosition, type TrainingState } from './state';
export { knnMonitor, openKnnSets, checkpointKnn, type KnnSets, type CheckpointKnnOptions } from './knn-monitor';
export { finetuneConfig, finetuneSchema, FINETUNE_PRESETS, type FinetuneConfig, type FinetuneConfigInput } from './finetune-config';
export {
  finetune, evaluateClassifier, writeFinetunePlots, FINETUNE_CHECKPOINT, CLASSIFIER_FILE, SUBSET_FILE,
  type FinetuneHooks, type FinetuneOptions, type FinetuneResult, type EvaluateOptions,
} from './finetune';
