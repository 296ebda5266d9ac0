import { base64urlnopad } from '@scure/base';
import { BkvError, type ErrorCode } from '../errors.js';
import { B64URL, bool, int, obj, oneOf, parseObject, str, type Obj } from './json-fields.js';

/**
 * Messages inside the end-to-end channel (docs/formats/vault-channel.md). JSON, UTF-8, with
 * OPAQUE messages and other bytes as unpadded base64url. Decoders are strict.
 */
export interface KsfParams {
  memory: number;
  iterations: number;
  parallelism: number;
}

export type VaultRequest =
  | { op: 'register-start'; user: string; registrationRequest: string }
  | { op: 'register-finish'; user: string; registrationRecord: string; wrappedKey: string; ksf: KsfParams; limit: number; keyId?: string }
  | { op: 'recover-start'; user: string; startLoginRequest: string; keyId?: string }
  | { op: 'recover-finish'; user: string; attemptId: string; finishLoginRequest: string | null; erase: boolean };

export type AttemptStatus = 'granted' | 'unknown' | 'locked' | 'duplicate' | 'key-mismatch';
export type FinishStatus = 'recovered' | 'erased' | 'wrong-password' | 'destroyed' | 'stale';

export type VaultResponse =
  | { ok: true; op: 'register-start'; registrationResponse: string }
  | { ok: true; op: 'register-finish'; version: number; attemptsRemaining: number }
  | {
      ok: true;
      op: 'recover-start';
      status: AttemptStatus;
      attemptId: string;
      loginState: string;
      loginResponse: string;
      ksf: KsfParams;
      attemptsRemaining: number;
      /** Only with status `key-mismatch`: the key id the account's record holds. */
      keyId?: string;
    }
  | { ok: true; op: 'recover-finish'; status: FinishStatus; release: string; attemptsRemaining: number }
  | { ok: false; error: { code: ErrorCode; message: string } };

export const USER_MAX = 256;
const B64_MAX = 4096;
export const KSF_LIMITS = { memory: [8, 4 * 1024 * 1024], iterations: [1, 64], parallelism: [1, 16] } as const;

function b64(o: Obj, key: string): string {
  return str(o, key, B64_MAX, B64URL);
}

/** A key id (docs/formats/vault-channel.md): 16 bytes, 22 characters of base64url. */
export const KEY_ID_B64_CHARS = 22;
const KEY_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/** An optional `keyId` field: absent, or exactly 16 bytes as unpadded base64url. */
function keyIdField(o: Obj): { keyId?: string } {
  if (o.keyId === undefined) return {};
  return { keyId: str(o, 'keyId', KEY_ID_B64_CHARS, KEY_ID) };
}

function ksf(o: Obj, key: string): KsfParams {
  const k = obj(o, key);
  return {
    memory: int(k, 'memory', ...KSF_LIMITS.memory),
    iterations: int(k, 'iterations', ...KSF_LIMITS.iterations),
    parallelism: int(k, 'parallelism', ...KSF_LIMITS.parallelism),
  };
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

export const encodeRequest = (r: VaultRequest): Uint8Array => enc({ v: 1, ...r });
export const encodeResponse = (r: VaultResponse): Uint8Array => enc({ v: 1, ...r });

export function decodeRequest(bytes: Uint8Array): VaultRequest {
  const o = parseObject(bytes, 'vault request');
  if (o.v !== 1) throw new BkvError('MALFORMED', 'vault request has an unknown version');
  const op = oneOf(o, 'op', ['register-start', 'register-finish', 'recover-start', 'recover-finish'] as const);
  const user = str(o, 'user', USER_MAX);
  if (user.length === 0) throw new BkvError('MALFORMED', 'field "user" must not be empty');
  switch (op) {
    case 'register-start':
      return { op, user, registrationRequest: b64(o, 'registrationRequest') };
    case 'register-finish':
      return {
        op,
        user,
        registrationRecord: b64(o, 'registrationRecord'),
        wrappedKey: b64(o, 'wrappedKey'),
        ksf: ksf(o, 'ksf'),
        limit: int(o, 'limit', 1, 1000),
        ...keyIdField(o),
      };
    case 'recover-start':
      return { op, user, startLoginRequest: b64(o, 'startLoginRequest'), ...keyIdField(o) };
    case 'recover-finish':
      return {
        op,
        user,
        attemptId: b64(o, 'attemptId'),
        finishLoginRequest: o.finishLoginRequest === null ? null : b64(o, 'finishLoginRequest'),
        erase: bool(o, 'erase'),
      };
  }
}

export function decodeResponse(bytes: Uint8Array): VaultResponse {
  const o = parseObject(bytes, 'vault reply');
  if (o.v !== 1) throw new BkvError('MALFORMED', 'vault reply has an unknown version');
  if (o.ok === false) {
    const e = obj(o, 'error');
    return { ok: false, error: { code: str(e, 'code', 64) as ErrorCode, message: str(e, 'message', 1024) } };
  }
  if (o.ok !== true) throw new BkvError('MALFORMED', 'vault reply has no "ok" field');
  const op = oneOf(o, 'op', ['register-start', 'register-finish', 'recover-start', 'recover-finish'] as const);
  switch (op) {
    case 'register-start':
      return { ok: true, op, registrationResponse: b64(o, 'registrationResponse') };
    case 'register-finish':
      return { ok: true, op, version: int(o, 'version', 1, Number.MAX_SAFE_INTEGER), attemptsRemaining: int(o, 'attemptsRemaining', 0, 1000) };
    case 'recover-start':
      return {
        ok: true,
        op,
        status: oneOf(o, 'status', ['granted', 'unknown', 'locked', 'duplicate', 'key-mismatch'] as const),
        attemptId: b64(o, 'attemptId'),
        loginState: b64(o, 'loginState'),
        loginResponse: b64(o, 'loginResponse'),
        ksf: ksf(o, 'ksf'),
        attemptsRemaining: int(o, 'attemptsRemaining', 0, 1000),
        ...keyIdField(o),
      };
    case 'recover-finish':
      return {
        ok: true,
        op,
        status: oneOf(o, 'status', ['recovered', 'erased', 'wrong-password', 'destroyed', 'stale'] as const),
        release: str(o, 'release', B64_MAX, B64URL),
        attemptsRemaining: int(o, 'attemptsRemaining', 0, 1000),
      };
  }
}

export const toB64 = (b: Uint8Array): string => base64urlnopad.encode(b);

export function fromB64(s: string, what: string): Uint8Array {
  try {
    return base64urlnopad.decode(s);
  } catch {
    throw new BkvError('MALFORMED', `${what} is not valid base64url`);
  }
}
