// Data-parallel training over torch.distributed (c10d).
export { worldFromEnv, rankDevice, type WorldOptions } from '../runtime/world-env';
export { ProcessGroup, available, REDUCE_OPS, BACKENDS, type ReduceOp, type InitOptions, type Backend } from '../runtime/process-group';
export { DistributedDataParallel, type DdpOptions } from './ddp';
export { launch, type LaunchOptions, type LaunchResult, type RankFailure } from './launch';
export { init, group, destroy } from './default-group';
