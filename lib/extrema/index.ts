// ExtreMA: masking, heads, objectives, EMA and the model.
export { ExtremaModel, type ExtremaOutput, type ExtremaStepOptions } from './model';
export { extremaConfig, HEAD_NORMS, MOMENTUM_SCHEDULES, type ExtremaConfig, type ExtremaConfigInput, type ExtremaLoss, type HeadNorm, type MomentumSchedule } from './config';
export { sampleMasks, checkMasking, visibleCount, type MaskMode, type MaskingOptions } from './masking';
export { projector, predictor, mlpHead } from './heads';
export { byolLoss, infoNceLoss } from './loss';
export { emaUpdate, momentumAt } from './ema';
export { collapseStats, readCollapseStats, COLLAPSE_SPREAD_WARNING, COLLAPSE_STAT_NAMES, type CollapseStats } from './collapse';
export { saveCheckpoint, loadCheckpoint, readCheckpoint, loadEncoder, inferConfig, CheckpointError, CHECKPOINT_FORMAT, type CheckpointState, type ReadCheckpointOptions, type LoadEncoderOptions } from './checkpoint';
