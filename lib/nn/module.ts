// The Module base: a tree of named parameters, buffers and sub-modules with
// PyTorch's dotted naming, so a state dict written here reads in PyTorch and
// the other way round. Forward methods are ordinary typed methods on each
// subclass; nothing here is generic over their signatures.
import { Tensor } from '../tensor/tensor';
import { describe, isFloating, type DType } from '../tensor/dtype';
import { assertDevice, type Device } from '../tensor/device';
import { noGrad } from '../autograd';

export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

interface BufferEntry {
  tensor: Tensor;
  persistent: boolean;
}

export class StateDictError extends Error {
  override name = 'StateDictError';
}

export abstract class Module {
  /** Dropout and drop path are active only in training mode. */
  training = true;
  private readonly _parameters = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, BufferEntry>();
  private readonly _modules = new Map<string, Module>();

  /**
   * Registers a parameter under `name` and returns it: it requires grad and
   * survives every scope (the module owns it until dispose()). Subclasses keep
   * it in a field of the same name, which to() updates when it moves.
   */
  protected registerParameter(name: string, value: Tensor, requiresGrad = true): Tensor {
    this.checkName(name);
    if (!(value instanceof Tensor)) throw new TypeError(`Expected a Tensor for parameter "${name}" but received ${describe(value)}`);
    const p = value.isLeaf ? value : value.detach();
    if (p !== value) value.dispose();
    if (p.requiresGrad !== requiresGrad) p.requiresGrad_(requiresGrad);
    p.keep();
    this._parameters.set(name, p);
    return p;
  }

  /** A tensor that is state but not trained (e.g. fixed position embeddings). */
  protected registerBuffer(name: string, value: Tensor, persistent = true): Tensor {
    this.checkName(name);
    if (!(value instanceof Tensor)) throw new TypeError(`Expected a Tensor for buffer "${name}" but received ${describe(value)}`);
    value.keep();
    this._buffers.set(name, { tensor: value, persistent });
    return value;
  }

  protected registerModule<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    if (!(module instanceof Module)) throw new TypeError(`Expected a Module for "${name}" but received ${describe(module)}`);
    this._modules.set(name, module);
    return module;
  }

  private checkName(name: string): void {
    if (typeof name !== 'string' || name.length === 0 || name.includes('.')) {
      throw new TypeError(`Expected a non-empty name without dots but received ${describe(name)}`);
    }
    if (this._parameters.has(name) || this._buffers.has(name) || this._modules.has(name)) {
      throw new TypeError(`"${name}" is already registered on ${this.constructor.name}`);
    }
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._modules.entries()];
  }

  /** This module and every descendant, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this._modules) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Parameters with dotted names, in registration order, depth first. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of m._parameters) out.push([path ? `${path}.${name}` : name, p]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, b] of m._buffers) {
        if (!persistentOnly || b.persistent) out.push([path ? `${path}.${name}` : name, b.tensor]);
      }
    }
    return out;
  }

  /** Number of parameter elements (only those that require grad if trainableOnly). */
  numParameters(trainableOnly = false): number {
    let n = 0;
    for (const p of this.parameters()) if (!trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /**
   * Parameters and persistent buffers by dotted name. The tensors are the
   * module's own (not copies): read or save them, do not dispose them.
   */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = new Map();
    for (const [path, m] of this.namedModules(prefix)) {
      const at = (name: string) => (path ? `${path}.${name}` : name);
      for (const [name, p] of m._parameters) out.set(at(name), p);
      for (const [name, b] of m._buffers) if (b.persistent) out.set(at(name), b.tensor);
    }
    return out;
  }

  /**
   * Copies values into the module's tensors (converting dtype/device as
   * needed). Strict by default: any missing or unexpected key, or any shape
   * mismatch, throws one error listing all of them and changes nothing.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): LoadResult {
    const strict = options.strict ?? true;
    const incoming = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, target] of own) {
      const src = incoming.get(k);
      if (src === undefined) continue;
      if (!(src instanceof Tensor)) {
        mismatched.push(`${k}: expected a Tensor but received ${describe(src)}`);
        continue;
      }
      if (src.isDisposed) {
        mismatched.push(`${k}: the tensor has been disposed`);
        continue;
      }
      const a = target.shape;
      const b = src.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) mismatched.push(`${k}: expected shape [${a.join(', ')}] but received [${b.join(', ')}]`);
    }
    const problems: string[] = [];
    if (mismatched.length > 0) problems.push(`shape mismatches:\n  ${mismatched.join('\n  ')}`);
    if (strict && missing.length > 0) problems.push(`missing keys (${missing.length}): ${preview(missing)}`);
    if (strict && unexpected.length > 0) problems.push(`unexpected keys (${unexpected.length}): ${preview(unexpected)}`);
    if (problems.length > 0) throw new StateDictError(`Error loading the state dict into ${this.constructor.name}:\n${problems.join('\n')}`);
    noGrad(() => {
      for (const [k, target] of own) {
        const src = incoming.get(k);
        if (src !== undefined) target.copy_(src);
      }
    });
    return { missing, unexpected };
  }

  /** Sets training mode here and in every descendant. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Turns gradient recording for every parameter on or off. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /** Clears every parameter's .grad. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /**
   * Moves (and/or casts floating tensors of) the module in place: each tensor
   * is replaced by its converted copy, and the old one is freed, as are the
   * packed copies of the modules that changed.
   */
  to(target: { device?: Device; dtype?: DType } | Device): this {
    const opts = typeof target === 'string' ? { device: assertDevice(target) } : target;
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        let changed = false;
        for (const [name, p] of m._parameters) {
          const moved = convert(p, opts);
          if (moved === p) continue;
          changed = true;
          if (p.requiresGrad) moved.requiresGrad_(true);
          moved.keep();
          m._parameters.set(name, moved);
          m.replaced(name, moved);
          p.dispose();
        }
        for (const [name, b] of m._buffers) {
          const moved = convert(b.tensor, opts);
          if (moved === b.tensor) continue;
          changed = true;
          moved.keep();
          const old = b.tensor;
          b.tensor = moved;
          m.replaced(name, moved);
          old.dispose();
        }
        if (changed) m.releaseCaches();
      }
    });
    return this;
  }

  /** Keeps a field named like a registered tensor pointing at its current value. */
  private replaced(name: string, value: Tensor): void {
    if (Object.prototype.hasOwnProperty.call(this, name)) (this as unknown as Record<string, Tensor>)[name] = value;
  }

  /** Frees what a module derived from its tensors (packed copies); dispose, and to() where it moved something, call it. */
  protected releaseCaches(): void {}

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      m.releaseCaches();
      for (const p of m._parameters.values()) p.dispose();
      for (const b of m._buffers.values()) b.tensor.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function convert(t: Tensor, opts: { device?: Device; dtype?: DType }): Tensor {
  const device = opts.device === undefined ? undefined : assertDevice(opts.device);
  // Only floating tensors are cast, as in PyTorch's Module.to(dtype).
  const dtype = isFloating(t.dtype) ? opts.dtype : undefined;
  const sameDevice = device === undefined || sameDeviceName(t.device, device);
  if (sameDevice && (dtype === undefined || dtype === t.dtype)) return t;
  return t.to({ device: device ?? t.device, dtype: dtype ?? t.dtype });
}

function sameDeviceName(a: string, b: string): boolean {
  const norm = (d: string) => (d === 'cuda' ? 'cuda:0' : d);
  return norm(a) === norm(b);
}

function preview(keys: string[]): string {
  return keys.length <= 12 ? keys.join(', ') : `${keys.slice(0, 12).join(', ')}, … (${keys.length - 12} more)`;
}

/** A module with one tensor in and one tensor out, so it can sit in a Sequential. */
export interface TensorModule extends Module {
  forward(x: Tensor): Tensor;
}
