import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import * as opaque from '@serenity-kit/opaque';
import { BkvError, isBkvError } from '../../shared/errors.js';
import {
  CONTINUATION_VERSION,
  deriveChannelKeyPair,
  openContinuation,
  openRequest,
  parseContinuation,
  sealResponse,
  type ChannelKeyPair,
} from '../../shared/protocol/channel.js';
import { sealForSession } from '../../shared/protocol/key-wrap.js';
import {
  decodeRequest,
  encodeResponse,
  fromB64,
  toB64,
  type KsfParams,
  type VaultRequest,
  type VaultResponse,
} from '../../shared/protocol/messages.js';
import { encodePasskeyResponse, isPasskeyRequest, type PasskeyResponse } from '../../shared/protocol/passkey-messages.js';
import { Reader, Writer } from './codec.js';
import { handlePasskeyRequest, type PasskeyPolicy } from './passkey-escrow.js';
import { checkCounterSignRequest, type CounterSignRequest } from './counter-sign.js';
import { ATTEMPT_ID_BYTES } from './entries.js';
import type { CoreEnv } from './env.js';
import { opaqueServerPublicKey, signingPublicKey, type FleetSecrets } from './fleet-secrets.js';
import { SEAL_NONCE_BYTES, seal, unseal } from './sealing.js';
import { ATTEMPT_TTL_MS, type Command, type CommandResult } from '../records/commands.js';
import { isNotLeader } from '../records/batcher.js';

/** Runs vault commands on the records (the leader's batcher): resolves once the change is committed. */
export interface RecordExecutor {
  execute(cmd: Command): Promise<CommandResult>;
}
import { concatBytes } from '../../shared/bytes.js';
import type { FleetPublicKeys } from '../../shared/fleet-formats/artifact.js';

export interface VaultPolicy {
  /** Attempts a record gets when the client does not ask for fewer. */
  defaultLimit: number;
  /** The most attempts a client may ask for. */
  maxLimit: number;
  /** The key-stretching parameters shown for accounts without a record (the fake-record path). */
  defaultKsf: KsfParams;
  /** Witnesses (note verifier keys) whose statements about this fleet the core will counter-sign. */
  trustedWitnesses?: readonly string[];
  /** The relying party and origins whose passkey assertions release keys (docs/passkeys.md); none: passkeys refused. */
  passkeys?: PasskeyPolicy;
}

/** OPAQUE's "memory-constrained" Argon2id profile (RFC 9106 §4, second recommendation). */
export const DEFAULT_KSF: KsfParams = { memory: 65536, iterations: 3, parallelism: 4 };
export const DEFAULT_POLICY: VaultPolicy = { defaultLimit: 10, maxLimit: 100, defaultKsf: DEFAULT_KSF };

/** The fleet's three public keys (the shape the fleet artifact publishes). */
export type { FleetPublicKeys };

/** Counters the core keeps about itself (no secrets): exported as metrics by the host. */
export interface CoreStats {
  requests: number;
  rejected: number;
  /** Credential responses computed from a real record: bounded by the guess limits. */
  credentialResponses: number;
  recoveries: number;
}

const te = new TextEncoder();

/**
 * The vault core's request logic: decrypts client requests, runs the server side of OPAQUE,
 * commits every state change through the record batcher (a majority commit) before any reply that depends on it, and
 * encrypts replies. It holds the fleet secrets; the host only sees sealed bytes.
 */
export class VaultCore {
  readonly stats: CoreStats = { requests: 0, rejected: 0, credentialResponses: 0, recoveries: 0 };

  private constructor(
    private readonly secrets: FleetSecrets,
    private readonly channel: ChannelKeyPair,
    private readonly records: RecordExecutor,
    private readonly env: CoreEnv,
    readonly policy: VaultPolicy,
  ) {}

  static async create(
    secrets: FleetSecrets,
    records: RecordExecutor,
    env: CoreEnv,
    policy: VaultPolicy = DEFAULT_POLICY,
  ): Promise<VaultCore> {
    await opaque.ready;
    return new VaultCore(secrets, await deriveChannelKeyPair(secrets.channelSeed, env.channelPrimitives), records, env, policy);
  }

  publicKeys(): FleetPublicKeys {
    return {
      opaqueServerPublicKey: opaqueServerPublicKey(this.secrets),
      encryptionPublicKey: this.channel.publicKey,
      signingPublicKey: signingPublicKey(this.secrets),
    };
  }

  /**
   * Counter-signs a witness statement about this fleet's own artifact (see counter-sign.ts for the
   * checks). The only use of the fleet signing key: the core is no general signing oracle.
   */
  counterSign(req: CounterSignRequest): Uint8Array {
    const message = checkCounterSignRequest(req, this.publicKeys(), this.policy.trustedWitnesses ?? []);
    return ed25519.sign(message, this.secrets.signingSeed);
  }

  /**
   * Handles one end-to-end request for `account` (as authenticated by the gateway) and returns
   * the sealed reply. An envelope that does not decrypt throws (the gateway answers 400); every
   * error after that is returned inside the sealed reply.
   */
  async handle(account: string, envelope: Uint8Array): Promise<Uint8Array> {
    this.stats.requests++;
    if (envelope[0] === CONTINUATION_VERSION) return this.handleContinuation(account, envelope);
    const { plaintext, responseKey, continuationKey } = await openRequest(this.channel, account, envelope);
    if (isPasskeyRequest(plaintext)) return this.answerPasskeyRequest(account, plaintext, responseKey);
    return this.respond(responseKey, async () => {
      const req = decodeRequest(plaintext);
      if (req.user !== account) throw new BkvError('UNAUTHORIZED', 'request names another account than the one authenticated');
      switch (req.op) {
        case 'register-start':
          return this.registerStart(req);
        case 'register-finish':
          return this.registerFinish(req);
        case 'recover-start':
          return this.recoverStart(req, continuationKey);
        case 'recover-finish':
          throw new BkvError('MALFORMED', 'recover-finish must be sent as a continuation of its recovery start');
      }
    });
  }

  /** A recovery finish: sealed under the key its recovery start exported, with the sealed ticket. */
  private async handleContinuation(account: string, envelope: Uint8Array): Promise<Uint8Array> {
    const { ticket, sealed } = parseContinuation(envelope);
    const { attemptId, expires, serverLoginState, continuationKey } = this.openTicket(account, ticket);
    const { plaintext, responseKey } = openContinuation(continuationKey, account, ticket, sealed, this.channel.primitives);
    return this.respond(responseKey, async () => {
      const req = decodeRequest(plaintext);
      if (req.op !== 'recover-finish' || req.user !== account || req.attemptId !== toB64(attemptId)) {
        throw new BkvError('MALFORMED', 'a continuation must finish the attempt its ticket names');
      }
      if (this.env.now() > expires) throw new BkvError('CONFLICT', 'this recovery attempt has expired; start again');
      return this.recoverFinish(req, attemptId, serverLoginState);
    });
  }

  private async respond(responseKey: Uint8Array, produce: () => Promise<VaultResponse> | VaultResponse): Promise<Uint8Array> {
    let response: VaultResponse;
    try {
      response = await produce();
    } catch (err) {
      this.stats.rejected++;
      // Not the leader, or not this replication group's record: the host sends the request to
      // another member or group (no reply is sealed; docs/groups.md).
      if (!isBkvError(err) || isNotLeader(err) || err.code === 'WRONG_GROUP') throw err;
      response = { ok: false, error: { code: err.code, message: err.message } };
    }
    return sealResponse(responseKey, encodeResponse(response), this.env.random(12), this.channel.primitives);
  }

  /** Passkey escrow requests (src/core/passkey-escrow.ts), answered in the same sealed channel. */
  private async answerPasskeyRequest(account: string, plaintext: Uint8Array, responseKey: Uint8Array): Promise<Uint8Array> {
    let response: PasskeyResponse;
    try {
      response = await handlePasskeyRequest(
        { challengeKey: this.secrets.loginStateKey, records: this.records, env: this.env, policy: this.policy.passkeys, primitives: this.channel.primitives },
        account,
        plaintext,
      );
    } catch (err) {
      this.stats.rejected++;
      if (!isBkvError(err) || err.code === 'WRONG_GROUP') throw err;
      response = { ok: false, error: { code: err.code, message: err.message } };
    }
    return sealResponse(responseKey, encodePasskeyResponse(response), this.env.random(12), this.channel.primitives);
  }

  private registerStart(req: Extract<VaultRequest, { op: 'register-start' }>): VaultResponse {
    const { registrationResponse } = opaqueCall('registration request', () =>
      opaque.server.createRegistrationResponse({
        serverSetup: this.secrets.opaqueServerSetup,
        userIdentifier: req.user,
        registrationRequest: req.registrationRequest,
      }),
    );
    return { ok: true, op: 'register-start', registrationResponse };
  }

  private async registerFinish(req: Extract<VaultRequest, { op: 'register-finish' }>): Promise<VaultResponse> {
    if (req.limit > this.policy.maxLimit) {
      throw new BkvError('USAGE', `attempt limit ${req.limit} exceeds this fleet's maximum of ${this.policy.maxLimit}`);
    }
    const opaqueRecord = fromB64(req.registrationRecord, 'registration record');
    if (opaqueRecord.length !== 192) throw new BkvError('MALFORMED', 'registration record has the wrong length');
    const wrappedKey = fromB64(req.wrappedKey, 'wrapped key');
    if (wrappedKey.length !== 12 + 32 + 16) throw new BkvError('MALFORMED', 'wrapped key has the wrong length');
    const res = await this.records.execute({
      type: 'register',
      ts: this.env.now(),
      user: req.user,
      opaqueRecord,
      wrappedKey,
      ksf: req.ksf,
      limit: req.limit,
      ...(req.keyId !== undefined ? { keyId: fromB64(req.keyId, 'key id') } : {}),
    });
    if (res.kind !== 'register') throw new BkvError('INTERNAL', 'unexpected result for a registration');
    return { ok: true, op: 'register-finish', version: res.r.version, attemptsRemaining: res.r.attemptsRemaining };
  }

  private async recoverStart(req: Extract<VaultRequest, { op: 'recover-start' }>, continuationKey: Uint8Array): Promise<VaultResponse> {
    const ke1 = fromB64(req.startLoginRequest, 'credential request');
    const attemptId = sha256(concatBytes(te.encode('bkv attempt id v1'), ke1)).slice(0, ATTEMPT_ID_BYTES);
    // The attempt is committed (counter decremented) before any credential response exists.
    const now = this.env.now();
    const keyId = req.keyId !== undefined ? fromB64(req.keyId, 'key id') : undefined;
    const res = await this.records.execute({ type: 'attempt', ts: now, user: req.user, attemptId, ...(keyId ? { keyId } : {}) });
    if (res.kind !== 'attempt') throw new BkvError('INTERNAL', 'unexpected result for an attempt');
    const a = res.r;
    const granted = a.status === 'granted';
    if (granted) this.stats.credentialResponses++;
    // Unknown, locked, duplicate and key-mismatch attempts take OPAQUE's fake-record path: same
    // work, same shape. A key-mismatch ticket finishes as `stale`: no attempt was opened for it.
    const { loginResponse, serverLoginState } = opaqueCall('credential request', () =>
      opaque.server.startLogin({
        serverSetup: this.secrets.opaqueServerSetup,
        registrationRecord: a.status === 'granted' ? toB64(a.opaqueRecord) : null,
        startLoginRequest: req.startLoginRequest,
        userIdentifier: req.user,
      }),
    );
    const expires = now + ATTEMPT_TTL_MS;
    const loginState = this.sealTicket(req.user, attemptId, expires, serverLoginState, continuationKey);
    return {
      ok: true,
      op: 'recover-start',
      status: a.status,
      attemptId: toB64(attemptId),
      loginState: toB64(loginState),
      loginResponse,
      ksf: a.status === 'granted' ? a.ksf : this.policy.defaultKsf,
      attemptsRemaining: a.attemptsRemaining,
      ...(a.status === 'key-mismatch' ? { keyId: toB64(a.keyId) } : {}),
    };
  }

  private async recoverFinish(
    req: Extract<VaultRequest, { op: 'recover-finish' }>,
    attemptId: Uint8Array,
    serverLoginState: string,
  ): Promise<VaultResponse> {
    let sessionKey: Uint8Array | null = null;
    if (req.finishLoginRequest !== null) {
      try {
        const r = opaque.server.finishLogin({ serverLoginState, finishLoginRequest: req.finishLoginRequest });
        sessionKey = fromB64(r.sessionKey, 'session key');
      } catch {
        sessionKey = null; // KE3 did not verify: the client does not hold the password.
      }
    }
    const success = sessionKey !== null;
    const res = await this.records.execute({ type: 'finish', ts: this.env.now(), user: req.user, attemptId, success, erase: success && req.erase });
    if (res.kind !== 'finish') throw new BkvError('INTERNAL', 'unexpected result for a finish');
    const f = res.r;
    let release = '';
    if (f.status === 'recovered' && sessionKey) {
      this.stats.recoveries++;
      release = toB64(sealForSession(sessionKey, f.wrappedKey, this.env.random(12)));
    }
    const attemptsRemaining = f.status === 'recovered' || f.status === 'wrong-password' ? f.attemptsRemaining : 0;
    return { ok: true, op: 'recover-finish', status: f.status, release, attemptsRemaining };
  }

  /**
   * The recovery ticket: attempt id ‖ sealed(expiry, OPAQUE server login state, continuation key).
   * Sealed under the fleet's login-state key and bound to the account and attempt, so any member can
   * finish the attempt and nobody else can read or move it.
   */
  private sealTicket(user: string, attemptId: Uint8Array, expires: number, state: string, continuationKey: Uint8Array): Uint8Array {
    const body = new Writer(256).u64(expires).string(state).raw(continuationKey).finish();
    const sealed = seal(this.secrets.loginStateKey, this.env.random(SEAL_NONCE_BYTES), loginStateAad(user, attemptId), body, this.channel.primitives);
    return new Writer(sealed.length + ATTEMPT_ID_BYTES).raw(attemptId).raw(sealed).finish();
  }

  private openTicket(user: string, ticket: Uint8Array) {
    if (ticket.length < ATTEMPT_ID_BYTES) throw new BkvError('MALFORMED', 'recovery ticket too short');
    const attemptId = ticket.slice(0, ATTEMPT_ID_BYTES);
    const body = unseal(this.secrets.loginStateKey, loginStateAad(user, attemptId), ticket.subarray(ATTEMPT_ID_BYTES), 'recovery ticket', this.channel.primitives);
    const r = new Reader(body, 'recovery ticket');
    const expires = r.u64();
    const serverLoginState = r.string(1024);
    const continuationKey = r.raw(32);
    r.end();
    return { attemptId, expires, serverLoginState, continuationKey };
  }
}

function loginStateAad(user: string, attemptId: Uint8Array): Uint8Array {
  return new Writer(128).string('bkv login state v1').string(user).raw(attemptId).finish();
}

/** Runs an OPAQUE library call, turning its errors about client input into MALFORMED. */
function opaqueCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch {
    throw new BkvError('MALFORMED', `the ${what} is not a valid OPAQUE message`);
  }
}
