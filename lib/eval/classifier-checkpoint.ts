// Fine-tuning classifiers: built from a pretraining checkpoint (this
// project's safetensors or the authors' .pth) or from scratch, and saved as
// safetensors under timm's key names, with the classifier config and the
// class names in the metadata so a file alone rebuilds its model.
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { CheckpointError, readCheckpoint } from '../extrema/checkpoint';
import { VitClassifier, vitClassifierConfig, type VitClassifierConfig } from '../nn/vit-classifier';
import { vitConfig, type VitConfig, type VitConfigInput } from '../nn/vit-config';
import type { Tensor } from '../tensor/tensor';
import type { Device } from '../tensor/device';
import { describe } from '../tensor/dtype';
import { isPlainObject, oneOf } from '../checks';

export const CLASSIFIER_FORMAT = 'extrema-classifier/1';

export interface ClassifierFromOptions {
  numClasses: number;
  /** The architecture; required for 'none'. With a checkpoint it must match the checkpoint's (its image size may differ). */
  encoder?: VitConfigInput;
  /** Default 0.1. */
  dropPathRate?: number;
  /**
   * Which pretrained encoder to start from. Default 'student': the authors'
   * run_class_finetuning.py loads module.base_encoder.* unless --eval_momentum
   * asks for the momentum encoder (official-implementation.md does not say;
   * their code does).
   */
  which?: 'teacher' | 'student';
  /** Heads of a .pth model, whose weights do not tell it (default width / 64). */
  numHeads?: number;
  /** Seeds the initialisation of everything not loaded (the head, and all of it for 'none'). */
  seed?: number;
}

/** The architecture fields a pretrained encoder and the classifier must agree on. */
const ARCH_FIELDS = ['patchSize', 'inChans', 'embedDim', 'depth', 'numHeads', 'mlpRatio', 'qkvBias'] as const;

/**
 * A classifier from `source`: 'none' (random init, the from-scratch
 * baseline), an ExtreMA .safetensors checkpoint or an authors' .pth. The
 * encoder's patch embedding and blocks are loaded; its class token,
 * class-attention blocks, final norm and projector are dropped; fc_norm and
 * the head start fresh. At another image size the position embedding is the
 * sin-cos table of the new grid, which is what the fixed pretrained one is.
 */
export function classifierFrom(source: string, options: ClassifierFromOptions): VitClassifier {
  if (typeof source !== 'string' || source.length === 0) {
    throw new TypeError(`Expected a checkpoint file or 'none' for the classifier source but received ${describe(source)}`);
  }
  if (!isPlainObject(options)) throw new TypeError(`Expected options { numClasses, ... } for classifierFrom but received ${describe(options)}`);
  const base = { numClasses: options.numClasses, ...(options.dropPathRate === undefined ? {} : { dropPathRate: options.dropPathRate }) };
  const seed = options.seed === undefined ? {} : { seed: options.seed };
  if (source === 'none') {
    if (options.encoder === undefined) throw new TypeError("A classifier from scratch (source 'none') needs the encoder architecture in \"encoder\"");
    return new VitClassifier({ ...base, encoder: vitConfig(options.encoder) }, seed);
  }
  const which = oneOf(options.which ?? 'student', '"which" of classifierFrom', ['teacher', 'student'] as const);
  let ckpt;
  try {
    ckpt = readCheckpoint(source, { numHeads: options.numHeads });
  } catch (e) {
    if (e instanceof CheckpointError) throw new CheckpointError(`Expected a ViT pretraining checkpoint (ExtreMA .safetensors or the authors' .pth) for the classifier source but ${e.message.startsWith(source) ? e.message : `${source}: ${e.message}`}`);
    throw e;
  }
  try {
    const pretrained = ckpt.config.encoder;
    const wanted = options.encoder === undefined ? pretrained : vitConfig(options.encoder);
    const differences = ARCH_FIELDS.filter((k) => wanted[k] !== pretrained[k]);
    if (differences.length > 0) {
      const show = (c: VitConfig) => differences.map((k) => `${k} ${String(c[k])}`).join(', ');
      throw new CheckpointError(`Expected a checkpoint of the requested encoder (${show(wanted)}) but ${source} holds an encoder with ${show(pretrained)}`);
    }
    const prefix = which === 'teacher' ? 'momentum_encoder.' : 'base_encoder.';
    const state = new Map<string, Tensor>();
    for (const [k, t] of ckpt.state) {
      if (!k.startsWith(prefix)) continue;
      const name = k.slice(prefix.length);
      if (name.startsWith('patch_embed.') || name.startsWith('blocks.')) state.set(name, t);
    }
    if (state.size === 0) throw new CheckpointError(`${source} has no ${prefix}patch_embed.* or ${prefix}blocks.* weights (the ${which} encoder)`);
    const model = new VitClassifier({ ...base, encoder: wanted }, seed);
    try {
      const posEmbed = ckpt.state.get(`${prefix}pos_embed`);
      const samePositions = posEmbed !== undefined && posEmbed.shape.length === 3 && posEmbed.shape[1] === model.pos_embed.shape[1];
      if (samePositions) state.set('pos_embed', posEmbed);
      const fresh = model.stateDict();
      // What the encoder does not provide keeps the classifier's initialisation.
      for (const k of ['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias', ...(samePositions ? [] : ['pos_embed'])]) state.set(k, fresh.get(k) as Tensor);
      model.loadStateDict(state);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    ckpt.dispose();
  }
}

export interface SaveClassifierInfo {
  /** Class names in label order, or null when unknown. */
  classes: readonly string[] | null;
  metadata?: Record<string, string>;
  /** Further tensors (a training run's optimizer and RNG state), under names that are not the model's. */
  extra?: Map<string, Tensor>;
}

/** Writes the weights (timm's names), config and classes atomically. */
export function saveClassifier(file: string, model: VitClassifier, info: SaveClassifierInfo): void {
  if (!(model instanceof VitClassifier)) throw new TypeError(`Expected a VitClassifier for "model" of saveClassifier but received ${describe(model)}`);
  const classes = info?.classes ?? null;
  if (classes !== null && (!Array.isArray(classes) || classes.length !== model.numClasses || !classes.every((c) => typeof c === 'string'))) {
    throw new TypeError(`Expected ${model.numClasses} class names (one per output) or null for "classes" of saveClassifier but received ${describe(classes)}`);
  }
  const tensors = new Map(model.stateDict());
  for (const [k, t] of info.extra ?? new Map<string, Tensor>()) {
    if (tensors.has(k)) throw new TypeError(`Extra classifier tensor "${k}" collides with a model weight of the same name`);
    tensors.set(k, t);
  }
  saveSafetensors(file, tensors, {
    ...(info.metadata ?? {}),
    format: CLASSIFIER_FORMAT,
    config: JSON.stringify(model.config),
    classes: JSON.stringify(classes),
  });
}

export interface LoadedClassifier {
  /** In eval mode, on the requested device. */
  model: VitClassifier;
  classes: string[] | null;
  metadata: Record<string, string>;
  /** Tensors that are not model weights; the caller disposes them. */
  extra: Map<string, Tensor>;
}

/** Rebuilds a classifier written by saveClassifier (strict: every weight must be there and fit). */
export function loadClassifier(file: string, options: { device?: Device } = {}): LoadedClassifier {
  const { tensors, metadata } = loadSafetensors(file, { device: options.device });
  const extra = new Map<string, Tensor>();
  let model: VitClassifier | null = null;
  try {
    if (metadata.format !== CLASSIFIER_FORMAT || metadata.config === undefined) {
      throw new CheckpointError(`${file} is not a fine-tuned classifier (its metadata has no format "${CLASSIFIER_FORMAT}" and config${metadata.format ? `; its format is "${metadata.format}"` : ''})`);
    }
    const config = parseJson(file, 'config', metadata.config) as VitClassifierConfig;
    const classes = metadata.classes === undefined ? null : parseJson(file, 'classes', metadata.classes);
    if (classes !== null && !(Array.isArray(classes) && classes.every((c) => typeof c === 'string'))) {
      throw new CheckpointError(`${file}: expected a list of class names or null in the "classes" metadata but received ${describe(classes)}`);
    }
    model = new VitClassifier(vitClassifierConfig(config));
    if (classes !== null && classes.length !== model.numClasses) {
      throw new CheckpointError(`${file}: the metadata names ${classes.length} classes but the head has ${model.numClasses} outputs`);
    }
    if (options.device !== undefined) model.to(options.device);
    const own = model.stateDict();
    const weights = new Map<string, Tensor>();
    for (const [k, t] of tensors) (own.has(k) ? weights : extra).set(k, t);
    model.loadStateDict(weights);
    for (const t of weights.values()) t.dispose();
    return { model: model.eval(), classes: classes as string[] | null, metadata, extra };
  } catch (e) {
    model?.dispose();
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
}

function parseJson(file: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: the "${key}" metadata is not valid JSON (${(e as Error).message})`);
  }
}
