// Neural-network building blocks.
export { Module, StateDictError, type StateDict, type LoadResult, type TensorModule } from './module';
export * as init from './init';
export { Linear, type LinearOptions } from './linear';
export { LayerNorm } from './layer-norm';
export { GELU, Identity } from './activation';
export { Dropout, DropPath, dropPath } from './dropout';
export { Sequential } from './sequential';
export { ModuleList } from './module-list';
export { Mlp, type MlpOptions } from './mlp';
export { Attention, multiHeadAttention, type AttentionOptions, type AttentionResult } from './attention';
export { ClassAttention } from './class-attention';
export { Block, type BlockOptions } from './block';
export { ClassAttentionBlock, type ClassAttentionBlockOptions } from './class-attention-block';
export { PatchEmbed, PatchProjection, type PatchEmbedOptions } from './patch-embed';
export { sinCosPosEmbed2d } from './pos-embed';
export { vitConfig, validateVitConfig, VIT_PRESETS, INSTANCE_POOLINGS, type VitConfig, type VitConfigInput, type VitPreset, type InstancePooling } from './vit-config';
export { VisionTransformer, gatherViews, type EncodeOptions, type EncoderOutput, type VisionTransformerOptions } from './vision-transformer';
