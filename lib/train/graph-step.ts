// The pretraining step for --cuda-graph: forward, backward, AdamW and EMA on
// fixed tensors, so that on a GPU the whole step can be captured once in a
// device graph (lib/runtime/graph.ts) and replayed with one launch. Each call
// copies the augmented views into the same input tensors, writes the step's
// lr and momentum into device scalars (the optimizer and the EMA read those
// instead of host numbers), then runs the step: eagerly on the CPU and for
// the first warm-up steps on a GPU, as a replay after that. The augmentation
// stays outside the graph, because it reads random crop boxes on the host.
//
// On the GPU the masks come from the device's default generator, which graph
// capture knows how to advance on every replay; a private generator would
// repeat the captured masks. So a graphed GPU run draws other masks than an
// eager one with the same seed; on the CPU the eager path is kept exactly.
import { autocast } from '../runtime/device-runtime';
import { DeviceGraph, graphsSupported } from '../runtime/graph';
import { scope } from '../tensor/scope';
import { zeros } from '../tensor/creation';
import { collapseStats } from '../extrema/collapse';
import type { Tensor } from '../tensor/tensor';
import type { Run } from './run-setup';
import { graphStepBlocker } from './config';

/** Eager steps on the graph's stream before the capture (lazy set-up must happen outside it). */
const WARMUP_STEPS = 3;

interface StepOutputs {
  loss: Tensor;
  targets: Tensor;
  features: Tensor;
}

export interface StaticStepResult {
  /** This step's loss, a fresh device scalar the caller owns. */
  loss: Tensor;
  /** Collapse statistics of the teacher on this batch (asked for with `measure`), on the device. */
  collapse: Tensor | null;
}

export class StaticPretrainStep {
  private graph: DeviceGraph | null;
  private readonly momentum: Tensor;
  private student: Tensor | null = null;
  private teacher: Tensor | null = null;
  private shared = false;
  private outputs: StepOutputs | null = null;
  private calls = 0;

  /**
   * `capture`: use a device graph where the device supports one (say() tells
   * what happens otherwise); false keeps the fixed-tensor step eager, which is
   * what the CPU runs and what the tests compare with the plain step.
   */
  constructor(private readonly run: Run, capture: boolean, private readonly say: (line: string) => void) {
    const why = graphStepBlocker(run.cfg);
    if (why !== null) throw new Error(`--cuda-graph cannot be used with ${why}`);
    const device = run.cfg.device;
    // first what can refuse (every parameter needs the fused kernel), so nothing is left to free
    run.optimizer.useDeviceLr();
    this.graph = capture && graphsSupported(device) ? new DeviceGraph(device) : null;
    if (capture && this.graph === null) {
      say(device === 'cpu' ? '--cuda-graph: device graphs are for GPUs; on cpu the same fixed-tensor step runs eagerly'
        : `--cuda-graph: this libtorch cannot capture graphs on ${device}; the step runs eagerly`);
    }
    this.momentum = zeros([], { dtype: 'float32', device }).keep();
  }

  /** One optimizer step on this pair of views with this lr and momentum. */
  step(student: Tensor, teacher: Tensor, lr: number, momentum: number, measure: boolean): StaticStepResult {
    this.run.optimizer.setLr(lr);
    this.run.optimizer.writeDeviceLr();
    this.momentum.fill_(momentum);
    if (this.student === null) this.allocateInputs(student, teacher);
    else if (!sameShape(this.student, student) || (this.shared ? student !== teacher : !sameShape(this.teacher!, teacher))) {
      // A batch of another shape (a skipped image made it short): the same step on these
      // tensors, outside the graph, on the same optimizer.
      return scope(() => {
        const o = this.body(student, teacher);
        return { loss: o.loss, collapse: measure && o.targets.shape[0]! >= 2 ? collapseStats(o.targets, o.features) : null };
      });
    }
    this.student!.copy_(student);
    if (!this.shared) this.teacher!.copy_(teacher);
    this.calls += 1;
    if (this.graph === null) this.replaceOutputs(this.body(this.student!, this.teacher!));
    else if (this.calls <= WARMUP_STEPS) this.replaceOutputs(this.graph.warmUp(() => this.body(this.student!, this.teacher!)));
    else {
      if (!this.graph.captured) this.captureGraph();
      this.graph.replay();
    }
    return this.result(measure);
  }

  dispose(): void {
    for (const t of [this.student, this.shared ? null : this.teacher, this.outputs?.loss, this.outputs?.targets, this.outputs?.features, this.momentum]) t?.dispose();
    this.outputs = null;
    this.graph?.dispose();
  }

  private captureGraph(): void {
    const graph = this.graph!;
    try {
      this.replaceOutputs(graph.capture(() => this.body(this.student!, this.teacher!)));
      this.say('--cuda-graph: captured the training step; replaying it from now on');
    } catch (e) {
      // An invalid capture ran nothing on the device, but gradients it allocated
      // (never written) may be attached to the parameters: drop them, run on eagerly.
      this.run.model.zeroGrad();
      graph.dispose();
      this.graph = null;
      this.say(`--cuda-graph: capturing the step failed (${(e as Error).message}); continuing without a graph`);
      this.replaceOutputs(this.body(this.student!, this.teacher!));
    }
  }

  /**
   * The step as recorded: forward, backward, AdamW, EMA. On the fixed tensors
   * everything it reads is a fixed tensor and everything it returns is
   * overwritten next time. Masks come from the private generator while no
   * graph is in use, from the device's default one (which a capture can
   * advance on every replay) when it is.
   */
  private body(student: Tensor, teacher: Tensor): StepOutputs {
    const { cfg, model, optimizer, generators } = this.run;
    return scope(() => {
      const forward = () => model.forward(student, teacher, { generator: this.graph === null ? generators.masks : generators.default });
      const out = cfg.precision === 'fp32' ? forward() : autocast(cfg.device, 'bfloat16', forward);
      out.loss.backward();
      optimizer.step();
      model.zeroGrad();
      model.updateTeacher(this.momentum);
      return { loss: out.loss.detach(), targets: out.targets.detach(), features: out.teacherFeatures.detach() };
    });
  }

  private allocateInputs(student: Tensor, teacher: Tensor): void {
    this.shared = student === teacher;
    this.student = student.clone().keep();
    this.teacher = this.shared ? this.student : teacher.clone().keep();
  }

  private replaceOutputs(next: StepOutputs): void {
    const old = this.outputs;
    this.outputs = { loss: next.loss.keep(), targets: next.targets.keep(), features: next.features.keep() };
    if (old !== null && old.loss !== this.outputs.loss) for (const t of [old.loss, old.targets, old.features]) t.dispose();
  }

  private result(measure: boolean): StaticStepResult {
    const o = this.outputs!;
    return scope(() => ({
      loss: o.loss.clone(),
      collapse: measure && o.targets.shape[0]! >= 2 ? collapseStats(o.targets, o.features) : null,
    }));
  }
}

function sameShape(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}
