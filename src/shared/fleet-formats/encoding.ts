/**
 * Strict encodings shared by the fleet-key formats. Browser-safe.
 * Every decoder refuses non-canonical input so one value has exactly one encoding.
 */
import { base64 } from '@scure/base';
import { BkvError } from '../errors.js';

export function malformed(what: string, details: Record<string, unknown> = {}): BkvError {
  return new BkvError('MALFORMED', what, details);
}

/** Standard padded base64 (RFC 4648 section 4), canonical only. */
export function decodeBase64(s: unknown, what: string, length?: number): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw malformed(`${what}: not standard base64`);
  }
  let out: Uint8Array;
  try {
    out = base64.decode(s);
  } catch {
    throw malformed(`${what}: not standard base64`);
  }
  if (base64.encode(out) !== s) throw malformed(`${what}: non-canonical base64`);
  if (length !== undefined && out.length !== length) {
    throw malformed(`${what}: expected ${length} bytes, got ${out.length}`);
  }
  return out;
}

export function encodeBase64(b: Uint8Array): string {
  return base64.encode(b);
}

const HEX = '0123456789abcdef';

export function encodeHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x >> 4]! + HEX[x & 15]!;
  return s;
}

/** Lower-case hex only. */
export function decodeHex(s: unknown, what: string, length?: number): Uint8Array {
  if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) {
    throw malformed(`${what}: not lower-case hex`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  if (length !== undefined && out.length !== length) {
    throw malformed(`${what}: expected ${length} bytes, got ${out.length}`);
  }
  return out;
}

/** A canonical non-negative decimal (no sign, no leading zeros) within the safe integer range. */
export function parseDecimal(s: string, what: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw malformed(`${what}: not a canonical decimal number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw malformed(`${what}: number out of range`);
  return n;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Strict UTF-8 decoding: invalid sequences are an error, never replaced. */
export function fromUtf8(b: Uint8Array, what: string): string {
  try {
    return decoder.decode(b);
  } catch {
    throw malformed(`${what}: invalid UTF-8`);
  }
}

/** Namespaces: 1–128 characters of [A-Za-z0-9._:-], starting with an alphanumeric (URL-path safe). */
export function checkNamespace(ns: unknown, what = 'namespace'): string {
  if (typeof ns !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(ns)) {
    throw malformed(`${what}: must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`);
  }
  return ns;
}
