// Optimisation for pretraining: AdamW, parameter groups, schedules, gradient
// clipping and dynamic loss scaling.
export { AdamW, fusedAdamWSupported, type AdamWOptions, type AdamWGroup, type AdamWGroupState, type AdamWStateDict } from './adamw';
export { paramGroupsForDecay, isNoDecay, NO_DECAY_NAMES, type ParamGroup, type DecayGroupOptions } from './param-groups';
export { layerDecayParamGroups, vitLayerId } from './layer-decay';
export { scaledLr, warmupCosine, cosine, type WarmupCosineOptions } from './schedule';
export { clipGradNorm } from './clip';
export { GradScaler, type GradScalerOptions, type GradScalerState, type ScalableOptimizer } from './grad-scaler';
export { SGD, type SGDOptions, type SGDGroup, type SGDGroupState, type SGDStateDict } from './sgd';
