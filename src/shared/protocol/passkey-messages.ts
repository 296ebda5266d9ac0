/**
 * Passkey escrow messages inside the end-to-end channel (docs/formats/vault-channel.md,
 * "Passkey escrow"). JSON like the password messages, bytes as unpadded base64url, strict decoders.
 */
import { BkvError } from '../errors.js';
import { B64URL, obj, oneOf, parseObject, str, type Obj } from './json-fields.js';
import { USER_MAX } from './messages.js';

export interface AssertionFields {
  authenticatorData: string;
  clientDataJSON: string;
  signature: string;
}

export type PasskeyRequest =
  | { op: 'passkey-challenge'; user: string }
  | { op: 'passkey-register'; user: string; credentialId: string; publicKey: string; wrappedKey: string; assertion: AssertionFields }
  | { op: 'passkey-recover'; user: string; credentialId: string; assertion: AssertionFields };

export type PasskeyResponse =
  | { ok: true; op: 'passkey-challenge'; challenge: string; expires: number }
  | { ok: true; op: 'passkey-register'; version: number; passkeys: number }
  | { ok: true; op: 'passkey-recover'; wrappedKey: string }
  | { ok: false; error: { code: string; message: string } };

const PASSKEY_OPS = ['passkey-challenge', 'passkey-register', 'passkey-recover'] as const;

const b64 = (o: Obj, key: string, max = 4096) => str(o, key, max, B64URL);

function assertion(o: Obj): AssertionFields {
  const a = obj(o, 'assertion');
  for (const k of Object.keys(a)) if (!['authenticatorData', 'clientDataJSON', 'signature'].includes(k)) throw new BkvError('MALFORMED', `unknown assertion field "${k}"`);
  return { authenticatorData: b64(a, 'authenticatorData', 2048), clientDataJSON: b64(a, 'clientDataJSON', 4096), signature: b64(a, 'signature', 256) };
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
export const encodePasskeyRequest = (r: PasskeyRequest): Uint8Array => enc({ v: 1, ...r });
export const encodePasskeyResponse = (r: PasskeyResponse): Uint8Array => enc({ v: 1, ...r });

/** True when a decrypted request is a passkey one (its `op` starts with "passkey-"). */
export function isPasskeyRequest(bytes: Uint8Array): boolean {
  try {
    const o = parseObject(bytes, 'vault request');
    return typeof o.op === 'string' && o.op.startsWith('passkey-');
  } catch {
    return false;
  }
}

export function decodePasskeyRequest(bytes: Uint8Array): PasskeyRequest {
  const o = parseObject(bytes, 'vault request');
  if (o.v !== 1) throw new BkvError('MALFORMED', 'vault request has an unknown version');
  const op = oneOf(o, 'op', PASSKEY_OPS);
  const user = str(o, 'user', USER_MAX);
  if (user.length === 0) throw new BkvError('MALFORMED', 'field "user" must not be empty');
  switch (op) {
    case 'passkey-challenge':
      return { op, user };
    case 'passkey-register':
      return { op, user, credentialId: b64(o, 'credentialId', 1400), publicKey: b64(o, 'publicKey', 400), wrappedKey: b64(o, 'wrappedKey', 200), assertion: assertion(o) };
    case 'passkey-recover':
      return { op, user, credentialId: b64(o, 'credentialId', 1400), assertion: assertion(o) };
  }
}

export function decodePasskeyResponse(bytes: Uint8Array): PasskeyResponse {
  const o = parseObject(bytes, 'vault reply');
  if (o.v !== 1) throw new BkvError('MALFORMED', 'vault reply has an unknown version');
  if (o.ok === false) {
    const e = obj(o, 'error');
    return { ok: false, error: { code: str(e, 'code', 64), message: str(e, 'message', 1024) } };
  }
  if (o.ok !== true) throw new BkvError('MALFORMED', 'vault reply has no "ok" field');
  const op = oneOf(o, 'op', PASSKEY_OPS);
  const n = (k: string) => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new BkvError('MALFORMED', `field "${k}" must be a non-negative integer`);
    return v;
  };
  switch (op) {
    case 'passkey-challenge':
      return { ok: true, op, challenge: b64(o, 'challenge', 512), expires: n('expires') };
    case 'passkey-register':
      return { ok: true, op, version: n('version'), passkeys: n('passkeys') };
    case 'passkey-recover':
      return { ok: true, op, wrappedKey: b64(o, 'wrappedKey', 200) };
  }
}
