import { Module } from './module';

/** Holds sub-modules named '0', '1', … (torch.nn.ModuleList) for the caller to iterate. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
