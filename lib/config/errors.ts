// One clear message per problem, naming the field by its path ("knn.k"):
// "Expected an integer in [1, 100000] for "knn.k" but received number 0",
// "Unknown pretrain config field "knn.kk" (did you mean "knn.k"?)".
import type { z } from 'zod';
import { isPlainObject, received } from '../checks';
import { fieldsOf, schemaAt } from './schema';

type Path = readonly PropertyKey[];

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
  }
}

/** A custom issue whose message is a whole sentence rather than what the field accepts. */
export function sentence(ctx: z.RefinementCtx, path: Path, message: string): void {
  ctx.addIssue({ code: 'custom', path: [...path], message, params: { sentence: true } });
}

/** The custom issue for a cross-field bound: "Expected <expected> for <path> but received <value>". */
export function expected(ctx: z.RefinementCtx, path: Path, expectation: string): void {
  ctx.addIssue({ code: 'custom', path: [...path], message: expectation });
}

function valueAt(input: unknown, path: Path): unknown {
  let cur = input;
  for (const k of path) cur = isPlainObject(cur) || Array.isArray(cur) ? (cur as Record<PropertyKey, unknown>)[k as string] : undefined;
  return cur;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known name closest to `name`, if it is close enough to be a typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d <= Math.max(2, Math.floor(k.length / 3)) && (best === undefined || d < best.d)) best = { name: k, d };
  }
  return best?.name;
}

export interface MessageOptions {
  /** What the whole object is, for unknown fields and the root: "pretrain config". */
  what: string;
  /** How a path is named in messages; default "knn.k" in quotes (flags pass "--knn-k"). */
  name?: (path: Path) => string;
}

/** The messages of a failed parse; `input` is what was parsed (to show the value received). */
export function issueMessages(error: z.ZodError, input: unknown, schema: z.ZodType, o: MessageOptions): string[] {
  const dotted = (p: Path) => p.map(String).join('.');
  const name = o.name ?? ((p: Path) => (p.length === 0 ? `the ${o.what}` : `"${dotted(p)}"`));
  return error.issues.flatMap((issue): string[] => {
    if (issue.code === 'unrecognized_keys') {
      const at = schemaAt(schema, issue.path);
      const known = Object.keys((at && fieldsOf(at)) ?? {});
      return issue.keys.map((k) => {
        const hint = closest(k, known);
        const full = dotted([...issue.path, k]);
        return `Unknown ${o.what} field "${full}"${hint === undefined ? '' : ` (did you mean "${dotted([...issue.path, hint])}"?)`}`;
      });
    }
    if (issue.code === 'custom' && (issue.params as { sentence?: boolean } | undefined)?.sentence) return [`Invalid ${name(issue.path)}: ${issue.message}`];
    return [`Expected ${issue.message} for ${name(issue.path)} but received ${received(valueAt(input, issue.path))}`];
  });
}

/** schema.parse with ConfigError messages that name each field by its path. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, o: MessageOptions): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw new ConfigError(issueMessages(r.error, input, schema, o));
  return r.data;
}
