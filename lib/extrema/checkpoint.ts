// Checkpoints. This project writes safetensors with the authors' key names
// (base_encoder.*, momentum_encoder.*, predictor.*) and the model config in
// the metadata, so a file alone rebuilds its model. The authors' own .pth
// files load too: their architecture is inferred from the weights.
import * as fs from 'node:fs';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { stateDictFromPth } from '../io/pth';
import type { Tensor } from '../tensor/tensor';
import type { Device } from '../tensor/device';
import { VisionTransformer } from '../nn/vision-transformer';
import type { InstancePooling } from '../nn/vit-config';
import { ExtremaModel } from './model';
import { extremaConfig, type ExtremaConfig } from './config';
import { projector } from './heads';
import { visibleCount } from './masking';

export const CHECKPOINT_FORMAT = 'extrema/1';
const MODEL_PREFIXES = ['base_encoder.', 'momentum_encoder.', 'predictor.'];

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/**
 * Writes the model's full state (student, teacher, predictor) and config,
 * atomically. `extra` tensors (a training run's optimizer and RNG state) are
 * stored beside the weights under their own names; model loaders ignore them.
 */
export function saveCheckpoint(file: string, model: ExtremaModel, metadata: Record<string, string> = {}, extra: Map<string, Tensor> = new Map()): void {
  const tensors = new Map(model.stateDict());
  for (const [k, t] of extra) {
    if (tensors.has(k) || MODEL_PREFIXES.some((p) => k.startsWith(p))) throw new TypeError(`Extra checkpoint tensor "${k}" collides with the model's names`);
    tensors.set(k, t);
  }
  saveSafetensors(file, tensors, { ...metadata, format: CHECKPOINT_FORMAT, config: JSON.stringify(model.config) });
}

export interface CheckpointState {
  config: ExtremaConfig;
  /** Weights under the authors' names, without any 'module.' prefix. */
  state: Map<string, Tensor>;
  /** Other tensors in a safetensors checkpoint (a training run's optimizer and RNG state). */
  extra: Map<string, Tensor>;
  kind: 'safetensors' | 'pth';
  metadata: Record<string, string>;
  dispose(): void;
}

export interface ReadCheckpointOptions {
  /** Heads for a .pth, whose weights do not tell it (default width / 64). */
  numHeads?: number;
  device?: Device;
}

/** Reads either format into a config and a state dict. */
export function readCheckpoint(file: string, options: ReadCheckpointOptions = {}): CheckpointState {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
  } catch (e) {
    throw new CheckpointError(`Cannot read checkpoint ${file}: ${(e as Error).message}`);
  }
  const dispose = (state: Map<string, Tensor>) => () => {
    for (const t of state.values()) t.dispose();
  };
  // torch.save writes a zip archive ("PK\x03\x04"); safetensors starts with a length.
  if (head.readUInt32LE(0) === 0x04034b50) {
    const state = stateDictFromPth(file, { stripPrefix: 'module.', device: options.device });
    try {
      const config = inferConfig(state, options.numHeads);
      return { config, state, extra: new Map(), kind: 'pth', metadata: {}, dispose: dispose(state) };
    } catch (e) {
      dispose(state)();
      throw e instanceof CheckpointError ? new CheckpointError(`${file}: ${e.message}`) : e;
    }
  }
  const { tensors, metadata } = loadSafetensors(file, { device: options.device });
  try {
    if (metadata.format !== CHECKPOINT_FORMAT || metadata.config === undefined) {
      throw new CheckpointError(`${file} is a safetensors file but not an ExtreMA checkpoint (its metadata has no format "${CHECKPOINT_FORMAT}" and config)`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadata.config);
    } catch (e) {
      throw new CheckpointError(`${file}: the config in the metadata is not valid JSON (${(e as Error).message})`);
    }
    const config = extremaConfig(parsed as ExtremaConfig);
    const state = new Map<string, Tensor>();
    const extra = new Map<string, Tensor>();
    for (const [k, t] of tensors) (MODEL_PREFIXES.some((p) => k.startsWith(p)) ? state : extra).set(k, t);
    return { config, state, extra, kind: 'safetensors', metadata, dispose: dispose(tensors) };
  } catch (e) {
    dispose(tensors)();
    throw e;
  }
}

/** Rebuilds the whole model (strict: every key must be present and match). */
export function loadCheckpoint(file: string, options: ReadCheckpointOptions = {}): ExtremaModel {
  const ckpt = readCheckpoint(file, options);
  try {
    const model = new ExtremaModel(ckpt.config);
    try {
      if (options.device !== undefined) model.to(options.device);
      model.loadStateDict(ckpt.state);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    ckpt.dispose();
  }
}

export interface LoadEncoderOptions extends ReadCheckpointOptions {
  /** The teacher (momentum_encoder, the default: what the paper evaluates) or the student. */
  which?: 'teacher' | 'student';
}

/** Just one encoder with its projector, e.g. to embed images. */
export function loadEncoder(file: string, options: LoadEncoderOptions = {}): { encoder: VisionTransformer; config: ExtremaConfig } {
  const ckpt = readCheckpoint(file, options);
  try {
    const prefix = (options.which ?? 'teacher') === 'teacher' ? 'momentum_encoder.' : 'base_encoder.';
    const sub = new Map<string, Tensor>();
    for (const [k, v] of ckpt.state) if (k.startsWith(prefix)) sub.set(k.slice(prefix.length), v);
    if (sub.size === 0) throw new CheckpointError(`${file} has no ${prefix}* weights`);
    const cfg = ckpt.config;
    const enc = sub.has('head.0.weight') ? projector(cfg.encoder.embedDim, cfg.projectorHiddenDim, cfg.projectorDim, cfg.projectorLayers, undefined, cfg.headNorm) : undefined;
    const encoder = new VisionTransformer(cfg.encoder, enc === undefined ? {} : { head: enc });
    try {
      if (options.device !== undefined) encoder.to(options.device);
      encoder.loadStateDict(sub);
    } catch (e) {
      encoder.dispose();
      throw e;
    }
    return { encoder: encoder.eval(), config: cfg };
  } finally {
    ckpt.dispose();
  }
}

function shapeOf(state: Map<string, Tensor>, key: string): number[] | undefined {
  return state.get(key)?.shape;
}

function countIndexed(state: Map<string, Tensor>, prefix: string): number {
  let n = 0;
  while ([...state.keys()].some((k) => k.startsWith(`${prefix}${n}.`))) n++;
  return n;
}

/**
 * The architecture of an authors' checkpoint from its weights: width, depth,
 * patch size, channels, grid (from pos_embed, assumed square unless the
 * patch count is not a square), class-attention blocks, MLP ratio and head
 * sizes. Heads are width / 64 unless given.
 */
export function inferConfig(state: Map<string, Tensor>, numHeads?: number): ExtremaConfig {
  const enc = state.has('momentum_encoder.patch_embed.proj.weight') ? 'momentum_encoder.' : 'base_encoder.';
  const conv = shapeOf(state, `${enc}patch_embed.proj.weight`);
  if (conv === undefined || conv.length !== 4) throw new CheckpointError(`cannot infer the architecture: no ${enc}patch_embed.proj.weight of rank 4 (is this an ExtreMA checkpoint?)`);
  const [width, inChans, patch] = conv as [number, number, number, number];
  const pos = shapeOf(state, `${enc}pos_embed`);
  if (pos === undefined || pos.length !== 3) throw new CheckpointError(`cannot infer the image size: no ${enc}pos_embed of shape [1, N, D]`);
  let patches = pos[1] as number;
  const hasCls = state.has(`${enc}cls_token`);
  const depth = countIndexed(state, `${enc}blocks.`);
  const caBlocks = countIndexed(state, `${enc}blocks_token.`);
  // A class token at the input in a table with a slot for it (MoCo v3 style).
  if (hasCls && caBlocks === 0 && !Number.isInteger(Math.sqrt(patches)) && Number.isInteger(Math.sqrt(patches - 1))) patches -= 1;
  const side = Math.round(Math.sqrt(patches));
  if (side * side !== patches) throw new CheckpointError(`cannot infer the image size: pos_embed has ${patches} positions, not a square grid`);
  const fc1 = shapeOf(state, `${enc}blocks.0.mlp.fc1.weight`) ?? shapeOf(state, `${enc}blocks_token.0.mlp.fc1.weight`);
  const mlpRatio = fc1 === undefined ? 4 : (fc1[0] as number) / width;
  const heads = numHeads ?? width / 64;
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0) {
    throw new CheckpointError(`cannot infer the number of heads for width ${width}: pass numHeads (--heads)`);
  }
  const pooling: InstancePooling = caBlocks > 0 ? 'class-attention' : hasCls ? 'class-token' : 'mean';
  const headLinears = countLinears(state, `${enc}head.`);
  const predLinears = countLinears(state, 'predictor.');
  const firstHead = shapeOf(state, `${enc}head.0.weight`);
  const lastHead = headLinears > 0 ? shapeOf(state, `${enc}head.${3 * (headLinears - 1)}.weight`) : undefined;
  const firstPred = shapeOf(state, 'predictor.0.weight');
  return extremaConfig({
    encoder: {
      imgSize: side * patch, patchSize: patch, inChans, embedDim: width, depth, numHeads: heads, mlpRatio,
      classAttentionLayers: caBlocks, pooling,
    },
    projectorHiddenDim: firstHead?.[0] ?? 4096,
    projectorDim: lastHead?.[0] ?? 256,
    projectorLayers: headLinears > 0 ? headLinears : 3,
    predictorHiddenDim: firstPred?.[0] ?? 4096,
    predictorLayers: predLinears > 0 ? predLinears : 2,
    // The authors' heads hold LayerNorms; running statistics mean BatchNorm heads (this project's option).
    headNorm: state.has(`${enc}head.1.running_mean`) || state.has('predictor.1.running_mean') ? 'batch' : 'layer',
    // Training settings are not in the weights: the paper's 80% x 1 where it fits the grid.
    maskRatio: visibleCount(patches, 0.8) >= 1 ? 0.8 : 0,
    numMasks: 1,
  });
}

/** Linears of a head numbered like Sequential(Linear, LN, GELU, Linear, ...): indices 0, 3, 6, ... */
function countLinears(state: Map<string, Tensor>, prefix: string): number {
  let n = 0;
  while (state.has(`${prefix}${3 * n}.weight`)) n++;
  return n;
}
