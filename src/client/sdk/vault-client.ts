import * as opaque from '@serenity-kit/opaque';
import { BkvError } from '../../shared/errors.js';
import { openResponse, sealContinuation, sealRequest } from '../../shared/protocol/channel.js';
import type { ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';
import { openForSession, unwrapBackupKey, wrapBackupKey } from '../../shared/protocol/key-wrap.js';
import {
  decodeResponse,
  encodeRequest,
  fromB64,
  toB64,
  type KsfParams,
  type VaultRequest,
  type VaultResponse,
} from '../../shared/protocol/messages.js';
import { FleetKeyMismatchError, KeyMismatchError, LockedError, NotRegisteredError, WrongPasswordError } from './errors.js';
import { FINGERPRINT_BYTES, generateBackupKey, keyFingerprint } from '../keys/backup-key.js';
import type { VaultTransport } from './transport.js';
import { equalBytes } from '../../shared/bytes.js';

/** The fleet keys a client trusts: pinned in its configuration, or validated from a bundle. */
export interface TrustedFleetKeys {
  opaqueServerPublicKey: Uint8Array;
  encryptionPublicKey: Uint8Array;
}

export interface VaultClientOptions {
  /** The account, as the gateway authenticates it (the OPAQUE user identifier). */
  account: string;
  fleet: TrustedFleetKeys | (() => Promise<TrustedFleetKeys>);
  transport: VaultTransport;
  /** Argon2id parameters for new registrations (docs/vault.md, "Key stretching"). */
  ksf?: KsfParams;
  /** Attempts allowed before the key is destroyed (default 10). */
  attemptLimit?: number;
  /**
   * Who computes the channel's X25519, HKDF and AES-GCM (default: WebCrypto for HPKE, @noble for
   * replies). Same bytes either way; a Node app may pass faster native primitives.
   */
  channelPrimitives?: ChannelPrimitives;
}

/** What a recovery asks for. */
export interface RecoverOptions {
  /**
   * The key id (16 bytes, `keyFingerprint(K)`; a backup header's key id) of the key wanted. When the
   * vault holds a key with another id, `recoverKey` throws `KeyMismatchError` and no guess is spent.
   */
  keyId?: Uint8Array;
}

/** A recovery start computed ahead of time (`VaultClient.prepareRecovery`); single use. */
export interface PreparedRecovery {
  readonly password: string;
  readonly keyId?: Uint8Array;
  readonly clientLoginState: string;
  readonly req: VaultRequest;
  readonly envelope: Uint8Array;
  readonly responseKey: Uint8Array;
  readonly continuationKey: Uint8Array;
  used: boolean;
}

/** OPAQUE's "memory-constrained" Argon2id profile: 64 MiB, 3 passes, 4 lanes. */
export const DEFAULT_CLIENT_KSF: KsfParams = { memory: 65536, iterations: 3, parallelism: 4 };

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** The key for a new backup made with a password (`VaultClient.keyForNewBackup`). */
export interface BackupKeyResult {
  key: Uint8Array;
  /** `reused`: the key already escrowed for the account; `registered`: a new key was escrowed. */
  escrow: 'reused' | 'registered';
  attemptsRemaining: number;
}

const isPrepared = (o: PreparedRecovery | RecoverOptions): o is PreparedRecovery => 'req' in o;

/**
 * The key-stretching setting handed to @serenity-kit/opaque: Argon2id (v1.3) over the 64-byte OPRF
 * output, salt 16 zero bytes, 64 bytes out, `memory` in KiB (docs/formats/vault-channel.md, "OPAQUE").
 */
export const ksfConfig = (k: KsfParams) => ({ 'argon2id-custom': { memory: k.memory, iterations: k.iterations, parallelism: k.parallelism } });

/**
 * Escrows a backup key K in the vault under a password, and recovers it on any device.
 * Browser-safe. The password never leaves the device (OPAQUE); the vault sees only K wrapped
 * under a key derived from OPAQUE's export key.
 */
export class VaultClient {
  constructor(private readonly opts: VaultClientOptions) {}

  /** The account this client acts for. */
  get account(): string {
    return this.opts.account;
  }

  private async fleet(): Promise<TrustedFleetKeys> {
    return typeof this.opts.fleet === 'function' ? this.opts.fleet() : this.opts.fleet;
  }

  /** Sends a request sealed to the fleet key; returns the reply and the key for a continuation. */
  private async call(req: VaultRequest): Promise<{ res: Extract<VaultResponse, { ok: true }>; continuationKey: Uint8Array }> {
    const fleet = await this.fleet();
    const { envelope, responseKey, continuationKey } = await sealRequest(fleet.encryptionPublicKey, this.opts.account, encodeRequest(req), this.opts.channelPrimitives);
    return { res: await this.exchange(req, envelope, responseKey), continuationKey };
  }

  private async exchange(req: VaultRequest, envelope: Uint8Array, responseKey: Uint8Array): Promise<Extract<VaultResponse, { ok: true }>> {
    const res = decodeResponse(openResponse(responseKey, await this.opts.transport(envelope), this.opts.channelPrimitives));
    if (!res.ok) throw new BkvError(res.error.code, `vault: ${res.error.message}`);
    if (res.op !== req.op) throw new BkvError('MALFORMED', `vault answered ${res.op} to ${req.op}`);
    return res;
  }

  private checkServerKey(serverStaticPublicKey: string, fleet: TrustedFleetKeys): void {
    if (!equalBytes(fromB64(serverStaticPublicKey, 'server public key'), fleet.opaqueServerPublicKey)) {
      throw new FleetKeyMismatchError('the OPAQUE server key');
    }
  }

  /**
   * Escrows K under `password`, with K's key id beside it (so a recovery for another key spends no
   * guess). Replaces any earlier record for this account: backups made with the earlier key can no
   * longer be restored through the vault. `keyForNewBackup` reuses an escrowed key instead.
   */
  async registerKey(password: string, k: Uint8Array): Promise<{ attemptsRemaining: number }> {
    if (k.length !== 32) throw new BkvError('USAGE', 'the backup key must be 32 bytes');
    await opaque.ready;
    const account = this.opts.account;
    const ksf = this.opts.ksf ?? DEFAULT_CLIENT_KSF;
    const start = opaque.client.startRegistration({ password });
    const { res: r1 } = await this.call({ op: 'register-start', user: account, registrationRequest: start.registrationRequest });
    if (r1.op !== 'register-start') throw new BkvError('MALFORMED', 'unexpected reply');
    let fin;
    try {
      fin = opaque.client.finishRegistration({
        clientRegistrationState: start.clientRegistrationState,
        registrationResponse: r1.registrationResponse,
        password,
        keyStretching: ksfConfig(ksf),
      });
    } catch {
      throw new BkvError('MALFORMED', 'the vault sent an invalid registration response');
    }
    this.checkServerKey(fin.serverStaticPublicKey, await this.fleet());
    const wrapped = wrapBackupKey(fromB64(fin.exportKey, 'export key'), account, k, random(12));
    const { res: r2 } = await this.call({
      op: 'register-finish',
      user: account,
      registrationRecord: fin.registrationRecord,
      wrappedKey: toB64(wrapped),
      ksf,
      limit: this.opts.attemptLimit ?? 10,
      keyId: toB64(keyFingerprint(k)),
    });
    if (r2.op !== 'register-finish') throw new BkvError('MALFORMED', 'unexpected reply');
    return { attemptsRemaining: r2.attemptsRemaining };
  }

  /**
   * Recovers K with `password`, or throws WrongPasswordError / LockedError / NotRegisteredError, or
   * (with `keyId`) KeyMismatchError when the vault holds another key, without spending a guess.
   * Takes the options, or a recovery prepared with them.
   */
  async recoverKey(password: string, options?: PreparedRecovery | RecoverOptions): Promise<Uint8Array> {
    const prepared = options && isPrepared(options) ? options : await this.prepareRecovery(password, options);
    return (await this.login(password, false, prepared))!.key;
  }

  /**
   * The key for a new backup protected by `password`. By default the key already escrowed for the
   * account, recovered with this password (a wrong password fails as in `recoverKey`, and nothing
   * is registered), or a new key escrowed when the account has none. With `replace`, a new key is
   * escrowed over the old one (backups made with the old key can then no longer be restored
   * through the vault).
   */
  async keyForNewBackup(password: string, options: { replace?: boolean } = {}): Promise<BackupKeyResult> {
    if (!options.replace) {
      try {
        const got = (await this.login(password, false, await this.prepareRecovery(password)))!;
        return { key: got.key, escrow: 'reused', attemptsRemaining: got.attemptsRemaining };
      } catch (e) {
        if (!(e instanceof NotRegisteredError)) throw e;
      }
    }
    const key = generateBackupKey();
    const { attemptsRemaining } = await this.registerKey(password, key);
    return { key, escrow: 'registered', attemptsRemaining };
  }

  /**
   * Does the part of a recovery that needs no server round trip (the OPAQUE credential request and
   * its HPKE sealing) ahead of time, e.g. while the user is still typing; pass the result to
   * `recoverKey` once. Nothing is sent, and no attempt is spent, until then.
   */
  async prepareRecovery(password: string, options: RecoverOptions = {}): Promise<PreparedRecovery> {
    const keyId = options.keyId?.slice();
    if (keyId && keyId.length !== FINGERPRINT_BYTES) throw new BkvError('USAGE', `a key id must be ${FINGERPRINT_BYTES} bytes`);
    await opaque.ready;
    const fleet = await this.fleet();
    const start = opaque.client.startLogin({ password });
    const req: VaultRequest = {
      op: 'recover-start',
      user: this.opts.account,
      startLoginRequest: start.startLoginRequest,
      ...(keyId ? { keyId: toB64(keyId) } : {}),
    };
    const sealed = await sealRequest(fleet.encryptionPublicKey, this.opts.account, encodeRequest(req), this.opts.channelPrimitives);
    return { password, clientLoginState: start.clientLoginState, req, ...sealed, used: false, ...(keyId ? { keyId } : {}) };
  }

  /** Deletes this account's record; needs the password (an untrusted host cannot erase keys). */
  async deleteKey(password: string): Promise<void> {
    await this.login(password, true, await this.prepareRecovery(password));
  }

  private async login(password: string, erase: boolean, p: PreparedRecovery): Promise<{ key: Uint8Array; attemptsRemaining: number } | null> {
    if (p.used || p.password !== password || p.req.user !== this.opts.account) {
      throw new BkvError('USAGE', 'a prepared recovery is for one use, with the password and account it was made for');
    }
    p.used = true;
    const account = this.opts.account;
    const fleet = await this.fleet();
    const start = { clientLoginState: p.clientLoginState };
    const continuationKey = p.continuationKey;
    const r1 = await this.exchange(p.req, p.envelope, p.responseKey);
    if (r1.op !== 'recover-start') throw new BkvError('MALFORMED', 'unexpected reply');
    if (r1.status === 'unknown') throw new NotRegisteredError();
    if (r1.status === 'locked') throw new LockedError();
    if (r1.status === 'duplicate') throw new BkvError('CONFLICT', 'the vault saw this recovery request before (replayed)');
    if (r1.status === 'key-mismatch') {
      const held = r1.keyId !== undefined ? fromB64(r1.keyId, 'key id') : null;
      if (!p.keyId || !held || held.length !== FINGERPRINT_BYTES) throw new BkvError('MALFORMED', 'the vault answered key-mismatch to a recovery that named no key id');
      throw new KeyMismatchError(p.keyId, held);
    }
    let fin;
    try {
      fin = opaque.client.finishLogin({
        clientLoginState: start.clientLoginState,
        loginResponse: r1.loginResponse,
        password,
        keyStretching: ksfConfig(r1.ksf),
      });
    } catch {
      throw new BkvError('MALFORMED', 'the vault sent an invalid credential response');
    }
    if (fin) this.checkServerKey(fin.serverStaticPublicKey, fleet);
    // The finish continues the start's channel: sealed under the key the start exported, with the
    // core's sealed ticket, so neither side repeats the public-key work.
    const finishReq: VaultRequest = {
      op: 'recover-finish',
      user: account,
      attemptId: r1.attemptId,
      finishLoginRequest: fin ? fin.finishLoginRequest : null,
      erase,
    };
    const cont = sealContinuation(continuationKey, account, fromB64(r1.loginState, 'ticket'), encodeRequest(finishReq), random(12), this.opts.channelPrimitives);
    const r2 = await this.exchange(finishReq, cont.envelope, cont.responseKey);
    if (r2.op !== 'recover-finish') throw new BkvError('MALFORMED', 'unexpected reply');
    switch (r2.status) {
      case 'wrong-password':
        throw new WrongPasswordError(r2.attemptsRemaining);
      case 'destroyed':
        throw new LockedError();
      case 'stale':
        throw new BkvError('CONFLICT', 'the vault no longer accepts this attempt (already finished or replayed)');
      case 'erased':
        return null;
      case 'recovered': {
        if (!fin) throw new BkvError('INTERNAL', 'vault released a key without a password proof');
        const wrapped = openForSession(fromB64(fin.sessionKey, 'session key'), fromB64(r2.release, 'release'));
        const key = unwrapBackupKey(fromB64(fin.exportKey, 'export key'), account, wrapped);
        // A record registered without a key id (an older client) is compared here, after a
        // recovery that succeeded and so spent no guess.
        if (p.keyId && !equalBytes(keyFingerprint(key), p.keyId)) throw new KeyMismatchError(p.keyId, keyFingerprint(key));
        return { key, attemptsRemaining: r2.attemptsRemaining };
      }
    }
  }
}
