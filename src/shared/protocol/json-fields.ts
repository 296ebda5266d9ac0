import { BkvError } from '../errors.js';

/** Strict field readers for JSON messages: each throws `MALFORMED` naming the field. */
export type Obj = Record<string, unknown>;

export function parseObject(bytes: Uint8Array, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new BkvError('MALFORMED', `${what} is not valid UTF-8 JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BkvError('MALFORMED', `${what} is not a JSON object`);
  return v as Obj;
}

export function str(o: Obj, key: string, max = 4096, pattern?: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > max || (pattern && !pattern.test(v))) {
    throw new BkvError('MALFORMED', `field "${key}" must be a string${pattern ? ' of the right form' : ''} of at most ${max} characters`);
  }
  return v;
}

export function int(o: Obj, key: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new BkvError('MALFORMED', `field "${key}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

export function bool(o: Obj, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new BkvError('MALFORMED', `field "${key}" must be true or false`);
  return v;
}

export function obj(o: Obj, key: string): Obj {
  const v = o[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BkvError('MALFORMED', `field "${key}" must be an object`);
  return v as Obj;
}

export function oneOf<T extends string>(o: Obj, key: string, values: readonly T[]): T {
  const v = o[key];
  if (typeof v !== 'string' || !values.includes(v as T)) {
    throw new BkvError('MALFORMED', `field "${key}" must be one of ${values.join(', ')}`);
  }
  return v as T;
}

export const B64URL = /^[A-Za-z0-9_-]*$/;
