// ExtreMA: a student (encoder + projector + predictor) sees M extremely
// masked views of an image; a teacher (EMA copy of encoder + projector, no
// gradients) sees the full view; the student predicts the teacher's
// projection. Module names match the authors' state-dict keys.
import { Module } from '../nn/module';
import { Sequential } from '../nn/sequential';
import { VisionTransformer, type EncoderOutput } from '../nn/vision-transformer';
import { noGrad } from '../autograd';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import { Generator } from '../runtime/generator';
import { extremaConfig, type ExtremaConfig, type ExtremaConfigInput } from './config';
import { projector, predictor } from './heads';
import { sampleMasks } from './masking';
import { byolLoss, infoNceLoss } from './loss';
import { emaUpdate } from './ema';

export interface ExtremaStepOptions {
  /** The patches each masked view shows the student: indices int64 [B, M, n]; sampled from the config when omitted. */
  visible?: Tensor;
  /** Generator for mask sampling. */
  generator?: Generator;
}

export interface ExtremaOutput {
  loss: Tensor;
  /** Student predictions, [M*B, out], mask-major. */
  predictions: Tensor;
  /** Teacher projections (no gradient), [B, out]. */
  targets: Tensor;
  /** Teacher instance features before the projector (no gradient), [B, D]: for collapse diagnostics. */
  teacherFeatures: Tensor;
  /** The visible patch indices used, [B, M, n]. */
  visible: Tensor;
}

export class ExtremaModel extends Module {
  readonly config: ExtremaConfig;
  readonly base_encoder: VisionTransformer;
  readonly momentum_encoder: VisionTransformer;
  readonly predictor: Sequential;

  constructor(config: ExtremaConfigInput | ExtremaConfig = {}, options: { seed?: number } = {}) {
    super();
    const cfg = extremaConfig(config);
    this.config = cfg;
    const generator = options.seed === undefined ? undefined : Generator.create(options.seed + 1);
    const head = () => projector(cfg.encoder.embedDim, cfg.projectorHiddenDim, cfg.projectorDim, cfg.projectorLayers, generator, cfg.headNorm);
    this.base_encoder = this.registerModule('base_encoder', new VisionTransformer(cfg.encoder, { head: head(), seed: options.seed }));
    // The teacher starts as an exact copy, without stochastic depth or gradients.
    this.momentum_encoder = this.registerModule('momentum_encoder', new VisionTransformer({ ...cfg.encoder, dropPathRate: 0 }, { head: head(), seed: options.seed }));
    this.predictor = this.registerModule('predictor', predictor(cfg.projectorDim, cfg.predictorHiddenDim, cfg.predictorLayers, generator, cfg.headNorm));
    this.momentum_encoder.loadStateDict(this.base_encoder.stateDict());
    this.momentum_encoder.requiresGrad_(false);
  }

  /** Parameters the optimizer trains: student encoder, projector and predictor. */
  studentParameters(): [string, Tensor][] {
    return [...this.base_encoder.namedParameters('base_encoder'), ...this.predictor.namedParameters('predictor')];
  }

  /** Masks for a batch as the config prescribes, [B, M, n]. */
  sampleMasks(batch: number, generator?: Generator): Tensor {
    const enc = this.base_encoder;
    return sampleMasks(batch, enc.numPatches, {
      ratio: this.config.maskRatio, numMasks: this.config.numMasks, mode: this.config.maskMode, generator, device: enc.pos_embed.device,
    });
  }

  /**
   * One forward pass of the objective: the student encodes the masked views
   * of `studentView`, the teacher the full `teacherView` (both [B, C, H, W];
   * pass the same tensor for a shared view).
   */
  forward(studentView: Tensor, teacherView: Tensor, options: ExtremaStepOptions = {}): ExtremaOutput {
    return scope(() => {
      const b = studentView.size(0);
      if (teacherView.size(0) !== b) throw new TypeError(`Expected the teacher view to hold ${b} images like the student view but it holds ${teacherView.size(0)}`);
      const visible = options.visible ?? this.sampleMasks(b, options.generator);
      const student = this.base_encoder.encode(studentView, { visible });
      const predictions = this.predictor.forward(this.base_encoder.project(student.instance));
      const teacherFeatures = noGrad(() => this.momentum_encoder.encode(teacherView).instance);
      const targets = noGrad(() => this.momentum_encoder.project(teacherFeatures));
      const loss = this.config.loss === 'byol' ? byolLoss(predictions, targets) : infoNceLoss(predictions, targets, this.config.temperature);
      return { loss, predictions, targets, teacherFeatures, visible: options.visible === undefined ? visible : visible.detach() };
    });
  }

  /**
   * teacher = m * teacher + (1 - m) * student over all parameters of encoder
   * and projector. Buffers are not averaged: with BatchNorm heads the teacher
   * keeps its own running statistics, as BYOL's target network does.
   */
  updateTeacher(m: number | Tensor, options: { fused?: boolean } = {}): void {
    emaUpdate(this.momentum_encoder.parameters(), this.base_encoder.parameters(), m, options);
  }

  /** The teacher's (or student's) instance features (after the final norm) and tokens, without gradients. */
  encode(images: Tensor, which: 'teacher' | 'student' = 'teacher'): EncoderOutput {
    const encoder = which === 'teacher' ? this.momentum_encoder : this.base_encoder;
    return noGrad(() => encoder.encode(images));
  }
}
