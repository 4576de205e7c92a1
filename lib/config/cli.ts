// Commander options generated from a recipe schema and a table of flag
// names: each leaf field gets exactly one flag, its help is the field's
// .describe(), enums become .choices(), and the flag text is parsed and
// checked by the field's own schema, so `--epochs 0` and `epochs: 0` in a
// config file fail with the same words.
import { Option, InvalidArgumentError, type Command } from 'commander';
import type { z } from 'zod';
import { defaultOf, description, isNullable, isOptional, leafKind, leaves, schemaAt, type LeafKind } from './schema';
import { issueMessages } from './errors';

export interface FlagSpec {
  /** Commander flags: '--width <n>', or '--strict' for a boolean field set to true. */
  flags: string;
  /** The field it sets ('model.encoder.embedDim'); several fields take comma-separated values in order. */
  path: string | readonly string[];
  /** Help text; default: the field's .describe(). */
  description?: string;
}

export interface SchemaOptionsConfig {
  /** Make flags of fields without a default mandatory (commands without presets). */
  enforceRequired?: boolean;
  /** Give each option the field's default (commands without presets: the help shows it). */
  showDefaults?: boolean;
}

const paths = (spec: FlagSpec): readonly string[] => (typeof spec.path === 'string' ? [spec.path] : spec.path);
const split = (p: string) => p.split('.');

function leafAt(schema: z.ZodType, path: string): z.ZodType {
  const leaf = schemaAt(schema, split(path));
  if (leaf === undefined) throw new Error(`The flag table names "${path}", which is not a field of the schema`);
  return leaf;
}

/** Flag text to a typed value; text that does not fit stays text, so the field's schema reports it as received. */
export function valueFromText(text: string, kind: LeafKind, nullable = false): unknown {
  if (nullable && (text === 'null' || text === 'none')) return null;
  switch (kind.kind) {
    case 'number': {
      const n = Number(text);
      return text.trim() === '' || Number.isNaN(n) ? text : n;
    }
    case 'boolean': return text === 'true' ? true : text === 'false' ? false : text;
    case 'literal': return kind.values.find((v) => String(v) === text) ?? text;
    case 'tuple': {
      const parts = text.split(',');
      return parts.map((p, i) => valueFromText(p.trim(), kind.items[i] ?? { kind: 'other' }));
    }
    case 'array': return text.split(',').map((p) => valueFromText(p.trim(), kind.element));
    case 'union': {
      const tuple = kind.options.find((k) => k.kind === 'tuple');
      const single = kind.options.find((k) => k.kind !== 'tuple');
      return valueFromText(text, text.includes(',') && tuple ? tuple : (single ?? { kind: 'other' }));
    }
    default: return text;
  }
}

function optionFor(schema: z.ZodType, spec: FlagSpec, cfg: SchemaOptionsConfig): Option {
  const fields = paths(spec);
  const schemas = fields.map((p) => leafAt(schema, p));
  const help = spec.description ?? description(schemas[0]!);
  if (help === undefined) throw new Error(`The field "${fields[0]}" of ${spec.flags} has no .describe() text for --help`);
  const option = new Option(spec.flags, help);
  const flag = option.long ?? spec.flags;
  if (!option.required) {
    if (fields.length !== 1 || leafKind(schemas[0]!).kind !== 'boolean') throw new Error(`${spec.flags} takes no value, so it must set one boolean field`);
    return option;
  }
  const kinds = schemas.map(leafKind);
  const first = kinds[0]!;
  if (fields.length === 1 && first.kind === 'enum') option.choices(first.options);
  else if (fields.length === 1 && first.kind === 'literal') option.choices(first.values.map(String));
  else if (fields.length === 1 && first.kind === 'boolean') option.choices(['true', 'false']);
  else {
    option.argParser((text: string) => {
      let values: unknown[];
      if (fields.length === 1) values = [valueFromText(text, first, isNullable(schemas[0]!))];
      else {
        const parts = text.split(',');
        if (parts.length !== fields.length) {
          throw new InvalidArgumentError(`Expected ${fields.length} comma-separated values (${fields.map((p) => split(p).at(-1)).join(', ')}) for ${flag} but received "${text}"`);
        }
        values = parts.map((p, i) => valueFromText(p.trim(), kinds[i]!, isNullable(schemas[i]!)));
      }
      const problems = values.flatMap((v, i) => {
        const r = schemas[i]!.safeParse(v);
        const label = fields.length === 1 ? flag : `${flag} (${split(fields[i]!).at(-1)})`;
        return r.success ? [] : issueMessages(r.error, v, schemas[i]!, { what: flag, name: (p) => (p.length === 0 ? label : `${label}[${p.join('.')}]`) });
      });
      if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
      // Commander stores a parser's null as '', so null stays text here and inputFromFlags turns it into null.
      return fields.length === 1 ? (values[0] === null ? text : values[0]) : values;
    });
  }
  if (fields.length === 1) {
    if (cfg.enforceRequired && !isOptional(schemas[0]!)) option.makeOptionMandatory();
    const dflt = cfg.showDefaults ? defaultOf(schemas[0]!) : undefined;
    if (dflt !== undefined) option.default(dflt.value);
  }
  return option;
}

/** Throws unless every leaf of the schema has exactly one flag (a missing flag is a bug, not a user error). */
export function checkFlagTable(schema: z.ZodType, specs: readonly FlagSpec[]): void {
  const covered = specs.flatMap(paths);
  const twice = covered.filter((p, i) => covered.indexOf(p) !== i);
  if (twice.length > 0) throw new Error(`Fields with more than one flag: ${twice.join(', ')}`);
  const missing = leaves(schema).map((l) => l.path).filter((p) => !covered.includes(p));
  if (missing.length > 0) throw new Error(`Fields without a flag: ${missing.join(', ')}`);
}

/** One commander Option per spec, in table order, after checking that the table covers the schema. */
export function schemaOptions(schema: z.ZodType, specs: readonly FlagSpec[], cfg: SchemaOptionsConfig = {}): Option[] {
  checkFlagTable(schema, specs);
  return specs.map((spec) => optionFor(schema, spec, cfg));
}

/** Adds one option per spec to the command, in table order (the order --help shows). */
export function addSchemaOptions(cmd: Command, schema: z.ZodType, specs: readonly FlagSpec[], cfg: SchemaOptionsConfig = {}): Command {
  for (const option of schemaOptions(schema, specs, cfg)) cmd.addOption(option);
  return cmd;
}

/** The nested input object of the flags that were given (absent flags stay absent, so presets and files show through). */
export function inputFromFlags(values: Record<string, unknown>, schema: z.ZodType, specs: readonly FlagSpec[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (path: string, v: unknown) => {
    const keys = split(path);
    let cur = out;
    for (const k of keys.slice(0, -1)) cur = (cur[k] ??= {}) as Record<string, unknown>;
    cur[keys.at(-1)!] = v;
  };
  for (const spec of specs) {
    const v = values[new Option(spec.flags).attributeName()];
    if (v === undefined) continue;
    const fields = paths(spec);
    fields.forEach((p, i) => {
      const raw = fields.length === 1 ? v : (v as unknown[])[i];
      const leaf = leafAt(schema, p);
      set(p, typeof raw === 'string' ? valueFromText(raw, leafKind(leaf), isNullable(leaf)) : raw);
    });
  }
  return out;
}
