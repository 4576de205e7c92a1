// Leaf schemas for recipe fields. Each carries one sentence of what it
// accepts ("an integer in [1, 100000]") as the message of every issue it can
// raise, so a config file, a flag and code all read "Expected <that> for
// <field> but received <value>" (lib/config/errors.ts).
import { z } from 'zod';
import { rangeText } from '../checks';

type Range = { lowOpen?: boolean; highOpen?: boolean };

/** An integer in [min, max]. */
export function int(min: number, max: number) {
  const error = `an integer ${rangeText(min, max)}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** A finite number in [lo, hi] (or an open end); `what` names it in messages ("a mask ratio"). */
export function num(lo: number, hi: number, range: Range = {}, what = 'a number') {
  const error = `${what} ${rangeText(lo, hi, range)}`;
  const n = z.number({ error });
  const low = range.lowOpen ? n.gt(lo, { error }) : n.gte(lo, { error });
  return hi === Infinity ? low : range.highOpen ? low.lt(hi, { error }) : low.lte(hi, { error });
}

export function probability(range: Range = {}) {
  return num(0, 1, range, 'a probability');
}

export function choice<const T extends readonly [string, ...string[]]>(options: T) {
  return z.enum(options, { error: `one of ${options.join(', ')}` });
}

/** A non-empty string; `what` names it in messages ("a path"). */
export function text(what = 'a non-empty string') {
  return z.string({ error: what }).min(1, { error: what });
}

export function flag() {
  return z.boolean({ error: 'true or false' });
}

/** [a, b] of the same item schema. */
export function pair<T extends z.ZodType>(item: T, what: string) {
  return z.tuple([item, item], { error: what });
}

/** A strict object: an unknown key is an error (lib/config/errors.ts names it and suggests the closest known one). */
export function record<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, { error: 'an object (a mapping of fields)' });
}
