// Data-parallel training over torch.distributed (c10d).
export { worldFromEnv, type WorldOptions } from '../runtime/world-env';
export { ProcessGroup, available, REDUCE_OPS, type ReduceOp, type InitOptions } from '../runtime/process-group';
export { DistributedDataParallel, type DdpOptions } from './ddp';
export { launch, type LaunchOptions, type LaunchResult, type RankFailure } from './launch';
export { init, group, destroy } from './default-group';
