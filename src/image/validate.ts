import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Ajv as AjvType, ErrorObject, Schema, ValidateFunction } from 'ajv';
import { precompiled } from './validators.generated.js';

/** The options of cartorio's own Ajv; assets/build-validators.mjs compiles with the same. */
export const AJV_OPTIONS = { allErrors: true, strict: true, allowUnionTypes: true } as const;
/** A document with more problems than this is described by its first ones and a count. */
const MAX_PROBLEMS = 8;

/**
 * cartorio's own Ajv instance for every JSON that comes from outside (input files, Concourse
 * payloads). Unlike fastify's route Ajv it never strips or coerces: a bad document is rejected.
 * Loaded only when a schema has no precompiled validator (importing Ajv and compiling the
 * schemas a `serve FILE.tar` needs cost ~150 ms of its start-up).
 */
let ajv: AjvType | undefined;
function runtimeAjv(): AjvType {
  // Through require, so nothing loads Ajv until it is needed; the bundles (assets/build-bundle.mjs) make this a bundled require.
  if (ajv === undefined) {
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    ajv = new Ajv(AJV_OPTIONS);
  }
  return ajv;
}

/** Every schema given to compileValidator, for assets/build-validators.mjs. */
export const compiledSchemas: { schema: Schema; what: string }[] = [];

/** The key of a schema's precompiled validator: the hash of its JSON. */
export function schemaKey(schema: Schema): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 24);
}

/** Checks untrusted JSON against a schema; returns it typed or throws naming what and where. */
export type Validator<T> = (data: unknown, where: string) => T;

/**
 * A validator for `schema`: the one assets/build-validators.mjs compiled ahead of time into
 * validators.generated.ts (Ajv standalone code, same options), else compiled by Ajv on first use
 * (a schema changed since; test/validate.test.ts says when to regenerate). `what` names the
 * document in errors ("manifest", "metadata.json").
 */
export function compileValidator<T>(schema: Schema, what: string): Validator<T> {
  compiledSchemas.push({ schema, what });
  let check: ValidateFunction | undefined;
  return (data, where) => {
    check ??= (precompiled[schemaKey(schema)] as ValidateFunction | undefined) ?? runtimeAjv().compile(schema);
    if (check(data)) return data as T;
    throw new Error(`${where}: invalid ${what}: ${describeAjvErrors(check.errors ?? [])}`);
  };
}

/**
 * Every problem Ajv found, in one line: a person fixing a file by hand wants them all at once,
 * not one per run. Capped, so a hostile document cannot make the message huge.
 */
export function describeAjvErrors(errors: ErrorObject[]): string {
  // anyOf/oneOf report each branch's failure and then their own: the branches say more.
  const specific = errors.filter((error) => error.keyword !== 'anyOf' && error.keyword !== 'oneOf');
  const lines = [...new Set((specific.length > 0 ? specific : errors).map(describeAjvError))];
  if (lines.length === 0) return describeAjvError(undefined);
  const shown = lines.slice(0, MAX_PROBLEMS).join('; ');
  return lines.length > MAX_PROBLEMS ? `${shown}; and ${lines.length - MAX_PROBLEMS} more problems` : shown;
}

/** One line for one Ajv error: the JSON path, and for unknown keys the key itself. */
export function describeAjvError(error: ErrorObject | undefined): string {
  if (!error) return 'does not match its schema';
  const path = error.instancePath === '' ? '(top level)' : error.instancePath;
  if (error.keyword === 'additionalProperties') {
    const key = String(error.params['additionalProperty']);
    return `${path === '(top level)' ? '' : path + ': '}unknown key "${key}"${allowedKeys(error)}`;
  }
  if (error.keyword === 'required') return `${path}: missing required key "${String(error.params['missingProperty'])}"`;
  return `${path} ${error.message ?? 'is invalid'}`;
}

function allowedKeys(error: ErrorObject): string {
  const properties = (error.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return properties ? ` (allowed: ${Object.keys(properties).join(', ')})` : '';
}

/** Parses JSON text from `where`, turning a syntax error into one line naming the file. */
export function parseJson(text: Buffer | string, where: string): unknown {
  try {
    return JSON.parse(text.toString());
  } catch (error) {
    throw new Error(`${where}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
}
