// Small value checks shared by the whole library. Every failure reads
// "Expected <what is allowed> for <name> but received <what came>", so a
// constructor, an optimizer option and a config field all fail the same way.
// `name` is written into the message as given: '"dim" of Linear', '--epochs'.
// A value of the wrong type throws TypeError; a number out of range, RangeError.
import { describe } from './tensor/dtype';

export function fail(expected: string, name: string, value: unknown, ErrorClass: new (message: string) => Error = RangeError): never {
  throw new ErrorClass(`Expected ${expected} for ${name} but received ${received(value)}`);
}

/** describe() of tensor/dtype, but a short array of numbers or strings is shown whole ("[0.9, 0.2]"). */
export function received(value: unknown): string {
  const shown = Array.isArray(value) && value.length <= 8 && value.every((v) => typeof v === 'number' || typeof v === 'string');
  return shown ? `[${value.map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v))).join(', ')}]` : describe(value);
}

/** "[lo, hi]", "(lo, hi)", "[lo, hi)"...; an infinite upper end reads "x >= lo" (or "x > lo"). */
export function rangeText(lo: number, hi: number, o: { lowOpen?: boolean; highOpen?: boolean } = {}): string {
  if (hi === Infinity) return `${o.lowOpen ? '>' : '>='} ${lo}`;
  return `in ${o.lowOpen ? '(' : '['}${lo}, ${hi}${o.highOpen ? ')' : ']'}`;
}

/** An integer in [min, max] (max defaults to unbounded). */
export function intInRange(value: unknown, name: string, min: number, max = Infinity): number {
  const expected = `an integer ${rangeText(min, max)}`;
  if (typeof value !== 'number') fail(expected, name, value, TypeError);
  if (!Number.isSafeInteger(value) || value < min || value > max) fail(expected, name, value);
  return value;
}

export function positiveInt(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) fail('a positive integer', name, value, typeof value === 'number' ? RangeError : TypeError);
  return value as number;
}

export function nonNegativeInt(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) fail('a non-negative integer', name, value, typeof value === 'number' ? RangeError : TypeError);
  return value as number;
}

/** A finite number in the range (closed unless lowOpen/highOpen). */
export function numberInRange(value: unknown, name: string, lo: number, hi: number, o: { lowOpen?: boolean; highOpen?: boolean } = {}): number {
  const expected = `a number ${rangeText(lo, hi, o)}`;
  if (typeof value !== 'number') fail(expected, name, value, TypeError);
  const aboveLow = o.lowOpen ? value > lo : value >= lo;
  const belowHigh = o.highOpen ? value < hi : value <= hi;
  if (!Number.isFinite(value) || !aboveLow || !belowHigh) fail(expected, name, value);
  return value;
}

export function finiteNumber(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail('a finite number', name, value, typeof value === 'number' ? RangeError : TypeError);
  return value;
}

export function positiveFinite(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value > 0)) fail('a positive finite number', name, value, typeof value === 'number' ? RangeError : TypeError);
  return value;
}

export function nonNegativeFinite(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value >= 0)) fail('a non-negative finite number', name, value, typeof value === 'number' ? RangeError : TypeError);
  return value;
}

/** A probability in [0, 1], or [0, 1) where 1 would make no sense (a dropout rate). */
export function probability(value: unknown, name: string, o: { highOpen?: boolean } = {}): number {
  const ok = typeof value === 'number' && value >= 0 && (o.highOpen ? value < 1 : value <= 1);
  if (!ok) fail(`a probability ${rangeText(0, 1, o)}`, name, value, typeof value === 'number' ? RangeError : TypeError);
  return value as number;
}

export function isOneOf<T extends string>(value: unknown, options: readonly T[]): value is T {
  return typeof value === 'string' && (options as readonly string[]).includes(value);
}

export function oneOf<T extends string>(value: unknown, name: string, options: readonly T[]): T {
  if (!isOneOf(value, options)) fail(`one of ${options.join(', ')}`, name, value, TypeError);
  return value;
}

export function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail('a boolean', name, value, TypeError);
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
