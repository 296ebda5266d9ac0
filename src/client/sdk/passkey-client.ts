/**
 * Passkey escrow in the vault, client side (browser-safe). The WebAuthn ceremony itself is the
 * app's (it needs `navigator.credentials`); this client carries the sealed messages:
 * a challenge from the vault core, the registration of a credential with its passkey-wrapped K,
 * and the release of that wrapped K for an assertion the core verifies. See docs/passkeys.md.
 */
import { BkvError, type ErrorCode } from '../../shared/errors.js';
import { openResponse, sealRequest } from '../../shared/protocol/channel.js';
import type { ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';
import { fromB64, toB64 } from '../../shared/protocol/messages.js';
import { decodePasskeyResponse, encodePasskeyRequest, type PasskeyRequest, type PasskeyResponse } from '../../shared/protocol/passkey-messages.js';
import type { VaultTransport } from './transport.js';
import type { TrustedFleetKeys } from './vault-client.js';

export interface PasskeyAssertion {
  authenticatorData: Uint8Array;
  clientDataJSON: Uint8Array;
  signature: Uint8Array;
}

export interface PasskeyVaultClientOptions {
  account: string;
  fleet: TrustedFleetKeys | (() => Promise<TrustedFleetKeys>);
  transport: VaultTransport;
  channelPrimitives?: ChannelPrimitives;
}

const assertionFields = (a: PasskeyAssertion) => ({
  authenticatorData: toB64(a.authenticatorData),
  clientDataJSON: toB64(a.clientDataJSON),
  signature: toB64(a.signature),
});

export class PasskeyVaultClient {
  constructor(private readonly opts: PasskeyVaultClientOptions) {}

  get account(): string {
    return this.opts.account;
  }

  private async call<Op extends PasskeyRequest['op']>(req: PasskeyRequest & { op: Op }): Promise<Extract<PasskeyResponse, { ok: true; op: Op }>> {
    const fleet = typeof this.opts.fleet === 'function' ? await this.opts.fleet() : this.opts.fleet;
    const { envelope, responseKey } = await sealRequest(fleet.encryptionPublicKey, this.opts.account, encodePasskeyRequest(req), this.opts.channelPrimitives);
    const res = decodePasskeyResponse(openResponse(responseKey, await this.opts.transport(envelope), this.opts.channelPrimitives));
    if (!res.ok) throw new BkvError(res.error.code as ErrorCode, `vault: ${res.error.message}`);
    if (res.op !== req.op) throw new BkvError('MALFORMED', `vault answered ${res.op} to ${req.op}`);
    return res as Extract<PasskeyResponse, { ok: true; op: Op }>;
  }

  /** A fresh challenge from the vault core, sealed and bound to this account (valid 5 minutes, usable once). */
  async challenge(): Promise<Uint8Array> {
    const r = await this.call({ op: 'passkey-challenge', user: this.opts.account });
    return fromB64(r.challenge, 'challenge');
  }

  /**
   * Registers a credential and escrows K wrapped under its PRF-derived key. `assertion` is by the
   * new credential over a challenge from `challenge()` (proof that the key is real and held).
   */
  async register(p: { credentialId: Uint8Array; cosePublicKey: Uint8Array; wrappedKey: Uint8Array; assertion: PasskeyAssertion }): Promise<{ version: number; passkeys: number }> {
    const r = await this.call({
      op: 'passkey-register',
      user: this.opts.account,
      credentialId: toB64(p.credentialId),
      publicKey: toB64(p.cosePublicKey),
      wrappedKey: toB64(p.wrappedKey),
      assertion: assertionFields(p.assertion),
    });
    return { version: r.version, passkeys: r.passkeys };
  }

  /** The passkey-wrapped K, released once the core verified `assertion` over a challenge of its own. */
  async recover(p: { credentialId: Uint8Array; assertion: PasskeyAssertion }): Promise<Uint8Array> {
    const r = await this.call({ op: 'passkey-recover', user: this.opts.account, credentialId: toB64(p.credentialId), assertion: assertionFields(p.assertion) });
    return fromB64(r.wrappedKey, 'wrapped key');
  }
}
