// The ExtreMA encoder: a ViT over patch tokens (no class token at the input,
// pre-norm blocks without layer scale) followed by CaiT class-attention blocks
// that gather the patch tokens into one instance token. The appendix-A
// alternatives (class token at the input, mean pooling) are config options.
import { Module, type TensorModule } from './module';
import { PatchEmbed } from './patch-embed';
import { Block } from './block';
import { ClassAttentionBlock } from './class-attention-block';
import { LayerNorm } from './layer-norm';
import { Linear } from './linear';
import { ModuleList } from './module-list';
import { sinCosPosEmbed2d } from './pos-embed';
import { normal_, uniform_, xavierUniform_, zeros_ } from './init';
import { cat } from '../tensor/functional';
import { arange, empty } from '../tensor/creation';
import { scope } from '../tensor/scope';
import * as aten from '../tensor/ops.generated';
import type { Tensor } from '../tensor/tensor';
import { Generator } from '../runtime/generator';
import { vitConfig, type VitConfig, type VitConfigInput } from './vit-config';

export interface EncodeOptions {
  /**
   * The patches each masked view shows, indices int64 [B, M, n]: image b becomes M views
   * of n tokens. Views are stacked mask-major (row m*B + b), one encoder pass.
   * Position embeddings are added before the tokens are gathered.
   */
  visible?: Tensor;
  /** State-dict name of a block ('blocks.3', 'blocks_token.1') whose attention weights to return. */
  attentionOf?: string;
  /**
   * false: `instance` is the class token (or the token mean) before the final
   * LayerNorm, the feature the authors' main_lincls probes (it removes the
   * norm); `tokens` stay normalised. Default true.
   */
  instanceNorm?: boolean;
}

export interface EncoderOutput {
  /** Instance representation after the final norm, [B', D]. */
  instance: Tensor;
  /** Distributed representation: the patch tokens after the final norm, [B', n, D]. */
  tokens: Tensor;
  /** Attention weights of the requested block, [B', heads, queries, keys]. */
  attention?: Tensor;
}

export interface VisionTransformerOptions {
  /** Module applied to the instance feature by project() (the ExtreMA projector), stored as `head`. */
  head?: TensorModule;
  /** Seeds the initialisation; without it the default generator is used. */
  seed?: number;
}

export class VisionTransformer extends Module {
  readonly config: VitConfig;
  readonly patch_embed: PatchEmbed;
  pos_embed: Tensor;
  /** The class token [1, 1, D]; null with mean pooling, which has none. */
  cls_token: Tensor | null;
  readonly blocks: ModuleList<Block>;
  readonly blocks_token: ModuleList<ClassAttentionBlock>;
  readonly norm: LayerNorm;
  readonly head: TensorModule | null;

  constructor(config: VitConfigInput | VitConfig = {}, options: VisionTransformerOptions = {}) {
    super();
    const cfg = vitConfig(config);
    this.config = cfg;
    const generator = options.seed === undefined ? undefined : Generator.create(options.seed);
    const d = cfg.embedDim;
    this.patch_embed = this.registerModule('patch_embed', new PatchEmbed({
      imgSize: cfg.imgSize, patchSize: cfg.patchSize, inChans: cfg.inChans, embedDim: d, generator,
    }));
    this.cls_token = cfg.pooling === 'mean' ? null : this.registerParameter('cls_token', normal_(empty([1, 1, d]), 0, 0.02, generator));
    const [gh, gw] = this.patch_embed.grid;
    // Fixed, never trained: a buffer, saved in the state dict under the authors' name.
    this.pos_embed = this.registerBuffer('pos_embed', sinCosPosEmbed2d(d, gh, gw));
    const blockOptions = { mlpRatio: cfg.mlpRatio, qkvBias: cfg.qkvBias, normEps: cfg.normEps, generator };
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: cfg.depth }, (_, i) => new Block(d, cfg.numHeads, {
      ...blockOptions,
      dropPath: cfg.depth > 1 ? (cfg.dropPathRate * i) / (cfg.depth - 1) : 0,
    }))));
    // CaiT runs its class-attention blocks without stochastic depth.
    this.blocks_token = this.registerModule('blocks_token', new ModuleList(Array.from({ length: cfg.classAttentionLayers }, () => new ClassAttentionBlock(d, cfg.numHeads, {
      ...blockOptions,
      layerScaleInit: cfg.layerScaleInit,
    }))));
    this.norm = this.registerModule('norm', new LayerNorm(d, cfg.normEps));
    this.initWeights(generator);
    this.head = options.head === undefined ? null : this.registerModule('head', options.head);
  }

  get numPatches(): number {
    return this.patch_embed.numPatches;
  }

  get embedDim(): number {
    return this.config.embedDim;
  }

  /**
   * The authors' initialisation: xavier-uniform for every Linear (bias 0) and
   * for the patch convolution viewed as [D, C*p*p]. It runs before the head
   * is attached, so the projector keeps PyTorch's defaults, as in their code.
   */
  private initWeights(generator?: Generator): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear) {
        xavierUniform_(m.weight, 1, generator);
        if (m.bias) zeros_(m.bias);
      }
    }
    const w = this.patch_embed.proj.weight;
    const [out, inC, kh, kw] = w.shape as [number, number, number, number];
    const a = Math.sqrt(6 / (inC * kh * kw + out));
    uniform_(w, -a, a, generator);
  }

  /** Patch tokens plus position embeddings, [B, N, D]. */
  patchTokens(images: Tensor): Tensor {
    return scope(() => this.patch_embed.forward(images).add(this.pos_embed));
  }

  /** Runs the encoder; see EncodeOptions for masking and attention maps. */
  encode(images: Tensor, options: EncodeOptions = {}): EncoderOutput {
    return scope(() => this.encodeTokens(gatherViews(this.patchTokens(images), options.visible), options.attentionOf, options.instanceNorm));
  }

  /** Projection of the instance feature through `head` (the identity without one). */
  project(instance: Tensor): Tensor {
    return this.head === null ? aten.alias(instance) : this.head.forward(instance);
  }

  /** The encoder from already embedded (and possibly gathered) tokens [B', n, D]. */
  encodeTokens(tokens: Tensor, attentionOf?: string, instanceNorm = true): EncoderOutput {
    const cfg = this.config;
    const target = attentionOf === undefined ? null : this.parseAttentionTarget(attentionOf);
    return scope(() => {
      let attention: Tensor | undefined;
      const b = tokens.size(0);
      const cls = this.cls_token === null ? null : this.cls_token.expand(b, 1, cfg.embedDim);
      let x = cfg.pooling === 'class-token' ? cat([cls as Tensor, tokens], 1) : tokens;
      this.blocks.items.forEach((block, i) => {
        if (target?.kind === 'blocks' && target.index === i) {
          const r = block.forwardWithWeights(x);
          attention = r.weights;
          x = r.out;
        } else {
          x = block.forward(x);
        }
      });
      let pre: Tensor;
      if (cfg.pooling === 'class-attention') {
        let c = cls as Tensor;
        this.blocks_token.items.forEach((block, j) => {
          if (target?.kind === 'blocks_token' && target.index === j) {
            const r = block.forwardWithWeights(x, c);
            attention = r.weights;
            c = r.out;
          } else {
            c = block.forward(x, c);
          }
        });
        pre = cat([c, x], 1);
      } else {
        pre = x;
      }
      const out = this.norm.forward(pre);
      const pooled = instanceNorm ? out : pre;
      const instance = cfg.pooling === 'mean' ? pooled.mean(1) : pooled.select(1, 0);
      const patches = cfg.pooling === 'mean' ? out : out.narrow(1, 1, out.size(1) - 1);
      const result: EncoderOutput = { instance, tokens: patches };
      if (attention !== undefined) result.attention = attention;
      return result;
    });
  }

  private parseAttentionTarget(name: string): { kind: 'blocks' | 'blocks_token'; index: number } {
    const m = /^(blocks|blocks_token)\.(\d+)$/.exec(String(name));
    const count = (kind: string) => (kind === 'blocks' ? this.blocks.length : this.blocks_token.length);
    if (m === null || Number(m[2]) >= count(m[1] as string)) {
      throw new RangeError(`Expected a block name such as "blocks.${Math.max(0, this.blocks.length - 1)}" or "blocks_token.0" for "attentionOf" but received ${JSON.stringify(name)} (this encoder has ${this.blocks.length} blocks and ${this.blocks_token.length} class-attention blocks)`);
    }
    return { kind: m[1] as 'blocks' | 'blocks_token', index: Number(m[2]) };
  }
}

/**
 * Gathers the visible tokens of every view: tokens [B, N, D], visible [B, M, n] ->
 * [M*B, n, D], mask-major. Without visible, the tokens themselves.
 */
export function gatherViews(tokens: Tensor, visible: Tensor | undefined): Tensor {
  if (visible === undefined) return tokens;
  const [b, n] = tokens.shape as [number, number, number];
  const shape = visible.shape;
  if (visible.dtype !== 'int64' || shape.length !== 3 || shape[0] !== b) {
    throw new TypeError(`Expected int64 patch indices of shape [${b}, masks, kept] for "visible" but received ${visible.dtype} [${shape.join(', ')}]`);
  }
  const [, m, kept] = shape as [number, number, number];
  if (kept > n) throw new RangeError(`"visible" selects ${kept} tokens per view but there are only ${n} patches`);
  return scope(() => {
    const ids = visible.transpose(0, 1).reshape(m * b, kept);
    const rows = arange(b, undefined, 1, { device: tokens.device }).repeat(m).unsqueeze(1);
    return aten.index_Tensor(tokens, [rows, ids]);
  });
}
