// Walking a zod schema: the leaves of a nested recipe, the schema at a path,
// and what kind of value a leaf holds (for parsing flag text).
import type { z } from 'zod';

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType>; items?: z.ZodType[]; element?: z.ZodType; options?: z.ZodType[]; entries?: Record<string, string>; values?: unknown[]; defaultValue?: unknown };

function def(s: z.ZodType): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def;
}

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'nonoptional', 'catch']);

/** The schema under defaults, optionals, nullables and transforms (a pipe's input side). */
export function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const d = def(s);
    if (WRAPPERS.has(d.type) && d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in) s = d.in;
    else return s;
  }
}

/** The .describe() text on the leaf or any wrapper around it. */
export function description(s: z.ZodType): string | undefined {
  for (let cur: z.ZodType | undefined = s; cur !== undefined;) {
    if (cur.description !== undefined) return cur.description;
    const d = def(cur);
    cur = WRAPPERS.has(d.type) ? d.innerType : d.type === 'pipe' ? d.in : undefined;
  }
  return undefined;
}

export function isNullable(s: z.ZodType): boolean {
  for (let cur: z.ZodType | undefined = s; cur !== undefined;) {
    const d = def(cur);
    if (d.type === 'nullable') return true;
    cur = WRAPPERS.has(d.type) ? d.innerType : d.type === 'pipe' ? d.in : undefined;
  }
  return false;
}

/** The default value of a leaf, if it has one. */
export function defaultOf(s: z.ZodType): { value: unknown } | undefined {
  for (let cur: z.ZodType | undefined = s; cur !== undefined;) {
    const d = def(cur);
    if (d.type === 'default') return { value: d.defaultValue };
    cur = WRAPPERS.has(d.type) ? d.innerType : undefined;
  }
  return undefined;
}

/** Whether the input may leave the field out. */
export function isOptional(s: z.ZodType): boolean {
  return (s as unknown as { _zod: { optin?: string } })._zod.optin === 'optional';
}

/** The fields of an object schema (through wrappers), or null for a leaf. */
export function fieldsOf(s: z.ZodType): Record<string, z.ZodType> | null {
  const d = def(unwrap(s));
  return d.type === 'object' && d.shape ? d.shape : null;
}

/** Every leaf (a field that is not an object) with its dotted path, in declaration order. */
export function leaves(s: z.ZodType, prefix = ''): { path: string; schema: z.ZodType }[] {
  const fields = fieldsOf(s);
  if (fields === null) return [{ path: prefix, schema: s }];
  return Object.entries(fields).flatMap(([k, v]) => leaves(v, prefix === '' ? k : `${prefix}.${k}`));
}

/** The schema at a dotted path ('knn.k'), or undefined. */
export function schemaAt(s: z.ZodType, path: readonly (string | number | symbol)[]): z.ZodType | undefined {
  let cur: z.ZodType | undefined = s;
  for (const key of path) {
    const fields: Record<string, z.ZodType> | null = cur === undefined ? null : fieldsOf(cur);
    cur = fields?.[String(key)];
  }
  return cur;
}

export type LeafKind =
  | { kind: 'number' } | { kind: 'string' } | { kind: 'boolean' }
  | { kind: 'enum'; options: string[] } | { kind: 'literal'; values: unknown[] }
  | { kind: 'tuple'; items: LeafKind[] } | { kind: 'array'; element: LeafKind } | { kind: 'union'; options: LeafKind[] } | { kind: 'other' };

export function leafKind(s: z.ZodType): LeafKind {
  const d = def(unwrap(s));
  switch (d.type) {
    case 'number': case 'string': case 'boolean': return { kind: d.type };
    case 'enum': return { kind: 'enum', options: Object.values(d.entries ?? {}) };
    case 'literal': return { kind: 'literal', values: d.values ?? [] };
    case 'tuple': return { kind: 'tuple', items: (d.items ?? []).map(leafKind) };
    case 'array': return { kind: 'array', element: d.element === undefined ? { kind: 'other' } : leafKind(d.element) };
    case 'union': return { kind: 'union', options: (d.options ?? []).map(leafKind) };
    default: return { kind: 'other' };
  }
}
