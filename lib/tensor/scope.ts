// Tensor lifetime. Scopes are the main mechanism: every tensor created inside
// `scope(fn)` is freed when fn returns, except what fn returns or `keep()`s.
// A FinalizationRegistry frees tensors the program dropped outside any scope,
// but only as a backstop: Node runs finalizers after the event loop turns, so a
// synchronous loop that relies on GC grows without bound.
import { native } from '../native';

/** What scopes need to know about a tensor. */
export interface Owned {
  _id: number;
  _kept: boolean;
  /** 0: no backstop, 1: registration pending, 2: registered */
  _registered: number;
}

interface Scope {
  owned: Owned[];
}

const scopes: Scope[] = [];

const backstop = new FinalizationRegistry<number>((id) => {
  native.releaseMany([id]);
});

// Registration is deferred to the next turn of the event loop: finalizers
// cannot run before then anyway, and most temporaries are disposed by then,
// which saves the registry's cost (about 200 ns a tensor) for them.
let pending: Owned[] = [];
let flushScheduled = false;

function flushPending(): void {
  const list = pending;
  pending = [];
  for (const t of list) {
    if (t._id >= 0 && t._registered === 1) {
      t._registered = 2;
      backstop.register(t, t._id, t);
    }
  }
}

function onNextTurn(): void {
  flushScheduled = false;
  flushPending();
}

// A synchronous loop never reaches the next turn; every few thousand
// registrations the pending list is compacted so disposed tensors are not
// kept reachable (and the survivors are registered now).
const COMPACT_AT = 4096;

function registerBackstop(t: Owned): void {
  if (t._registered === 0) {
    t._registered = 1;
    pending.push(t);
    if (pending.length >= COMPACT_AT) flushPending();
    else if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(onNextTurn).unref();
    }
  }
}

/** Called for every tensor the library creates. */
export function adopt(t: Owned): void {
  const top = scopes[scopes.length - 1];
  if (top !== undefined) top.owned.push(t);
  else registerBackstop(t);
}

/** Called when a tensor is disposed explicitly. */
export function forget(t: Owned): void {
  if (t._registered === 2) backstop.unregister(t);
  t._registered = 0;
}

/** Marks a tensor to survive every enclosing scope (it is then the caller's to dispose). */
export function keep<T extends Owned>(t: T): T {
  t._kept = true;
  registerBackstop(t);
  return t;
}

function isOwned(value: unknown): value is Owned {
  return typeof value === 'object' && value !== null && typeof (value as Owned)._id === 'number' && '_kept' in value;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The tensors reachable from a scope's result through arrays, plain objects,
 * Maps (keys and values) and Sets, at any depth. Iterative with a visited set,
 * so deep or cyclic results neither overflow the stack nor loop.
 */
function collect(result: unknown, out: Set<Owned>): void {
  const pending: unknown[] = [result];
  const seen = new Set<object>();
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    if (isOwned(value)) {
      out.add(value);
    } else if (Array.isArray(value) || value instanceof Set) {
      for (const v of value) pending.push(v);
    } else if (value instanceof Map) {
      for (const [k, v] of value) pending.push(k, v);
    } else if (isPlainObject(value)) {
      for (const v of Object.values(value)) pending.push(v);
    }
  }
}

function isAsyncFunction(fn: unknown): boolean {
  if (typeof fn !== 'function') return false;
  const tag = (fn as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  return tag === 'AsyncFunction' || tag === 'AsyncGeneratorFunction';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null &&
    typeof (value as { then?: unknown }).then === 'function';
}

const SYNC_ONLY = 'scope() takes a synchronous function: tensors created after an await would escape it. ' +
  'Await outside the scope, or open a scope() inside the async function around each synchronous part';

function release(owned: Owned[], survivors: Set<Owned> | null): Owned[] {
  const ids: number[] = [];
  const moved: Owned[] = [];
  for (const t of owned) {
    if (t._id < 0) continue;
    if (t._kept || (survivors !== null && survivors.has(t))) {
      if (!t._kept) moved.push(t);
      continue;
    }
    ids.push(t._id);
    t._id = -1;
  }
  if (ids.length > 0) native.releaseMany(ids);
  return moved;
}

/**
 * Runs fn and frees every tensor created while it ran, except those passed
 * to keep() and the tensors in its result. Returned tensors move to the
 * enclosing scope.
 *
 * What counts as "in its result": the result itself if it is a Tensor, and
 * every Tensor reachable from it through arrays, plain objects (`{}` or
 * `Object.create(null)`), Maps (keys and values) and Sets, at any depth
 * (cycles are fine). Instances of other classes are NOT looked into: a
 * tensor held only in a field of a class instance (a module, a custom
 * record) is freed when the scope ends unless it was keep()'d.
 *
 * fn must be synchronous. An async function is refused before it runs; a
 * function that returns a promise (or any thenable) makes scope() throw a
 * TypeError after freeing fn's tensors, and the promise's own rejection, if
 * any, is marked handled so it cannot end the process.
 */
export function scope<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`Expected a function for scope() but received ${typeof fn}`);
  if (isAsyncFunction(fn)) throw new TypeError(SYNC_ONLY);
  const s: Scope = { owned: [] };
  scopes.push(s);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    release(s.owned, null);
    throw e;
  }
  scopes.pop();
  if (isThenable(result)) {
    release(s.owned, null);
    // The caller learns of the misuse from the TypeError; a later rejection
    // of the promise must not also surface as an unhandled rejection.
    Promise.resolve(result).catch(() => undefined);
    throw new TypeError(SYNC_ONLY);
  }
  const survivors = new Set<Owned>();
  collect(result, survivors);
  for (const t of release(s.owned, survivors)) adopt(t);
  return result;
}

/** Number of scopes currently open. */
export function scopeDepth(): number {
  return scopes.length;
}
