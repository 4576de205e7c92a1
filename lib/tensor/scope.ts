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

function collect(value: unknown, out: Set<Owned>, depth: number): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isOwned(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

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
 * Runs fn and frees every tensor created while it ran, except the tensors in
 * its result (a tensor, or arrays / plain objects / Maps holding tensors) and
 * those passed to keep(). Returned tensors move to the enclosing scope.
 */
export function scope<T>(fn: () => T): T {
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
  if (result instanceof Promise) {
    release(s.owned, null);
    throw new TypeError('scope() takes a synchronous function; tensors created after an await would escape it');
  }
  const survivors = new Set<Owned>();
  collect(result, survivors, 0);
  for (const t of release(s.owned, survivors)) adopt(t);
  return result;
}

/** Number of scopes currently open. */
export function scopeDepth(): number {
  return scopes.length;
}
