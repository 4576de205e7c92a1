// Reading a --config file: JSON or YAML, chosen by the extension (.json,
// .yaml, .yml); any other name is tried as JSON, then as YAML. Errors name
// the file and the line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument, stringify as stringifyYaml } from 'yaml';
import { describe } from '../tensor/dtype';
import { isPlainObject } from '../checks';

/** 1-based line and column of an offset. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before.at(-1)!.length + 1}`;
}

/**
 * Where JSON.parse gave up. V8 names an offset for some errors only
 * ("Unexpected token '}', ... is not valid JSON" has none), so this finds the
 * shortest prefix that fails for a reason other than ending early.
 */
function jsonErrorOffset(text: string): number {
  const broken = (k: number) => {
    try {
      JSON.parse(text.slice(0, k));
      return false;
    } catch (e) {
      const message = (e as Error).message;
      const at = /position (\d+)/.exec(message);
      return !/end of JSON input|Unterminated/.test(message) && (at === null || Number(at[1]) < k);
    }
  };
  if (!broken(text.length)) return text.length;
  let lo = 1;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (broken(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message.replace(/\s*\n\s*/g, ' ');
    throw new SyntaxError(`The config file ${file} is not valid JSON (${lineCol(text, jsonErrorOffset(text))}): ${message}`);
  }
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  const first = doc.errors[0];
  if (first !== undefined) throw new SyntaxError(`The config file ${file} is not valid YAML (${lineCol(text, first.pos[0])}): ${first.message}`);
  return doc.toJS();
}

/** The recipe object in `file`; throws if it cannot be read, does not parse, or is not a mapping of fields. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read the config file ${file}: ${(e as Error).message}`);
  }
  const ext = path.extname(file).toLowerCase();
  let value: unknown;
  if (ext === '.json') value = parseJson(text, file);
  else if (ext === '.yaml' || ext === '.yml') value = parseYaml(text, file);
  else {
    try {
      value = parseJson(text, file);
    } catch (jsonError) {
      try {
        value = parseYaml(text, file);
      } catch (yamlError) {
        throw new SyntaxError(`The config file ${file} is neither JSON nor YAML:\n  ${(jsonError as Error).message}\n  ${(yamlError as Error).message}`);
      }
    }
  }
  if (!isPlainObject(value)) throw new TypeError(`Expected a mapping of recipe fields in the config file ${file} but it holds ${describe(value)}`);
  return value;
}

export const CONFIG_FORMATS = ['json', 'yaml'] as const;
export type ConfigFormat = (typeof CONFIG_FORMATS)[number];

/** A resolved recipe as text that readConfigFile reads back to the same object (JSON: the run folder's config.json). */
export function formatConfig(value: unknown, format: ConfigFormat = 'json'): string {
  return format === 'yaml' ? stringifyYaml(value) : `${JSON.stringify(value, null, 2)}\n`;
}
