// Argument checks shared by the module constructors.
import { describe } from '../tensor/dtype';

export function positiveInt(value: unknown, what: string, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new TypeError(`Expected a positive integer for "${what}" of ${where} but received ${describe(value)}`);
  }
  return value as number;
}

export function probability(value: unknown, what: string, where: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
    throw new RangeError(`Expected a probability in [0, 1) for "${what}" of ${where} but received ${describe(value)}`);
  }
  return value;
}
