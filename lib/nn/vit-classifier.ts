// The fine-tuning classifier of the authors' finetune/run_class_finetuning.py
// (BEiT-based): the encoder's patch embedding, position embedding and ViT
// blocks, then mean-pooled patch tokens, a LayerNorm (fc_norm) and a Linear
// head. No class token and no class-attention blocks. Parameter names are
// timm's for VisionTransformer(global_pool='avg', class_token=False,
// fc_norm=True), so timm loads a saved state dict with strict=True.
import { Module } from './module';
import { PatchEmbed } from './patch-embed';
import { Block } from './block';
import { LayerNorm } from './layer-norm';
import { Linear } from './linear';
import { ModuleList } from './module-list';
import { sinCosPosEmbed2d } from './pos-embed';
import { normal_, zeros_ } from './init';
import { vitConfig, type VitConfig } from './vit-config';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';
import type { Tensor } from '../tensor/tensor';
import { Generator } from '../runtime/generator';
import { describe } from '../tensor/dtype';
import { finiteNumber, intInRange, isPlainObject, probability } from '../checks';

export interface VitClassifierConfig {
  /** The encoder's architecture; its pooling, class-attention and drop-path fields are not used. */
  encoder: VitConfig;
  numClasses: number;
  /** Stochastic depth at the last block, rising linearly from 0 (default 0.1, the authors' --drop_path). */
  dropPathRate?: number;
  /** The head's initial weights and bias are multiplied by this (default 0.001, BEiT's --init_scale). */
  headInitScale?: number;
}

/** The config with every default filled in and the encoder normalised to what the classifier builds. */
export function vitClassifierConfig(cfg: VitClassifierConfig): Required<VitClassifierConfig> {
  if (!isPlainObject(cfg)) throw new TypeError(`Expected a classifier config { encoder, numClasses } but received ${describe(cfg)}`);
  if (!isPlainObject(cfg.encoder)) throw new TypeError(`Expected a ViT config for "encoder" of the classifier config but received ${describe(cfg.encoder)}`);
  const numClasses = intInRange(cfg.numClasses, '"numClasses" of the classifier config', 1, 1_000_000);
  const dropPathRate = probability(cfg.dropPathRate ?? 0.1, '"dropPathRate" of the classifier config', { highOpen: true });
  const headInitScale = finiteNumber(cfg.headInitScale ?? 0.001, '"headInitScale" of the classifier config');
  const { pooling: _p, classAttentionLayers: _c, dropPathRate: _d, ...arch } = cfg.encoder;
  // The stored encoder config describes exactly what is built: mean pooling, no class attention.
  const encoder = vitConfig({ ...arch, pooling: 'mean', classAttentionLayers: 0, dropPathRate });
  return { encoder, numClasses, dropPathRate, headInitScale };
}

export class VitClassifier extends Module {
  readonly config: Required<VitClassifierConfig>;
  readonly depth: number;
  readonly numClasses: number;
  readonly patch_embed: PatchEmbed;
  /**
   * [1, N, D], a trained parameter initialised to the 2-D sin-cos table. The
   * authors build their fine-tuning model with use_learnable_pos_emb=True and
   * load the pretrained (sin-cos) values into it, so it is fine-tuned too.
   */
  pos_embed: Tensor;
  readonly blocks: ModuleList<Block>;
  readonly fc_norm: LayerNorm;
  readonly head: Linear;

  constructor(cfg: VitClassifierConfig, options: { seed?: number } = {}) {
    super();
    const config = vitClassifierConfig(cfg);
    this.config = config;
    const enc = config.encoder;
    this.depth = enc.depth;
    this.numClasses = config.numClasses;
    const generator = options.seed === undefined ? undefined : Generator.create(options.seed);
    const d = enc.embedDim;
    this.patch_embed = this.registerModule('patch_embed', new PatchEmbed({
      imgSize: enc.imgSize, patchSize: enc.patchSize, inChans: enc.inChans, embedDim: d, generator,
    }));
    const [gh, gw] = this.patch_embed.grid;
    this.pos_embed = this.registerParameter('pos_embed', sinCosPosEmbed2d(d, gh, gw));
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: enc.depth }, (_, i) => new Block(d, enc.numHeads, {
      mlpRatio: enc.mlpRatio, qkvBias: enc.qkvBias, normEps: enc.normEps, generator,
      dropPath: enc.depth > 1 ? (config.dropPathRate * i) / (enc.depth - 1) : 0,
    }))));
    this.fc_norm = this.registerModule('fc_norm', new LayerNorm(d, enc.normEps));
    this.head = this.registerModule('head', new Linear(d, config.numClasses, { generator }));
    this.initWeights(generator);
  }

  /**
   * BEiT's initialisation (modeling_finetune.py): every Linear N(0, 0.02)
   * (their trunc_normal_ cuts at +-2, i.e. 100 std, which never binds) with
   * bias 0, then the head scaled by headInitScale. The patch convolution keeps
   * PyTorch's default, as theirs. Pretrained weights replace all but the head.
   */
  private initWeights(generator?: Generator): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear) {
        normal_(m.weight, 0, 0.02, generator);
        if (m.bias) zeros_(m.bias);
      }
    }
    const scale = this.config.headInitScale;
    noGrad(() => {
      this.head.weight.mul_(scale);
      this.head.bias?.mul_(scale);
    });
  }

  /** The pooled, normalised feature before the head, [B, D]. */
  features(images: Tensor): Tensor {
    return scope(() => {
      let x = this.patch_embed.forward(images).add(this.pos_embed);
      for (const block of this.blocks.items) x = block.forward(x);
      return this.fc_norm.forward(x.mean(1));
    });
  }

  /** Logits [B, numClasses] from normalised float images [B, C, H, W]. */
  forward(images: Tensor): Tensor {
    return scope(() => this.head.forward(this.features(images)));
  }
}
