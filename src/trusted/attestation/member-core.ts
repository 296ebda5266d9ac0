/**
 * The part of the vault core that takes part in a deployment ceremony (part of the measured
 * build: src/trusted/core/vault-entry.ts re-exports it). Browser-safe, no I/O: randomness comes from the
 * injected CoreEnv and secrets go only to the injected key store.
 *
 * A MemberCore generates its identity keys (X25519 + Ed25519) inside, has its device attest them,
 * and then either generates the fleet secrets (member 1) and seals them to the other members'
 * attested X25519 keys, or receives its copy sealed that way. Its secrets sit in ES private
 * fields: no method returns them, and they leave only through `MemberKeyStore.put`.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { decodeBase64, encodeBase64, encodeHex, utf8 } from '../../shared/fleet-formats/encoding.js';
import { checkCounterSignRequest, type CounterSignRequest } from '../core/counter-sign.js';
import type { CoreEnv } from '../core/env.js';
import {
  decodeFleetSecrets,
  encodeFleetSecrets,
  generateFleetSecrets,
  opaqueServerPublicKey,
  signingPublicKey,
  type FleetSecrets,
} from '../core/fleet-secrets.js';
import { deriveChannelKeyPair } from '../../shared/protocol/channel.js';
import type { AttestationBackend, MemberKeyStore } from './backend.js';
import { keysEndorsementMessage, type FleetPublicKeySet } from '../../shared/attestation/endorsement.js';
import { encodeAttestation, verifyAttestationRecord, type AttestationRecord, type VerifiedAttestation } from '../../shared/attestation/format.js';

export const MEMBER_BIN_VERSION = 1;
const DELIVERY_INFO = 'bkv-fleet-secrets-delivery/v1';
const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
const ab = (u: Uint8Array): ArrayBuffer => u.slice().buffer as ArrayBuffer;

export { fleetKeysHash, keysEndorsementMessage, type FleetPublicKeySet } from '../../shared/attestation/endorsement.js';

/** What binds an attestation and a delivery to one ceremony. */
export interface CeremonyContext {
  namespace: string;
  fleetId: string;
  nonce: Uint8Array;
  measurement: string;
  /** Vendor roots whose devices this core accepts as peers. */
  vendorRoots: readonly Uint8Array[];
  now?: number;
}

/** The fleet secrets sealed (HPKE) to one member's attested X25519 key, signed by the sender. */
export interface SecretsDelivery {
  from: number;
  to: number;
  /** base64 HPKE encapsulated key */
  enc: string;
  /** base64 HPKE ciphertext of the encoded fleet secrets */
  ciphertext: string;
  /** base64 Ed25519 signature by the sender's identity key over deliveryMessage(...) */
  signature: string;
}

function deliveryInfo(ctx: CeremonyContext, from: number, to: number): Uint8Array {
  return utf8(`${DELIVERY_INFO}\nnamespace ${ctx.namespace}\nfleet ${ctx.fleetId}\nnonce ${encodeHex(ctx.nonce)}\nfrom ${from}\nto ${to}\n`);
}

/** The bytes the sender signs: the HPKE info (who, which ceremony) and hashes of enc and ciphertext. */
export function deliveryMessage(ctx: CeremonyContext, d: Pick<SecretsDelivery, 'from' | 'to' | 'enc' | 'ciphertext'>): Uint8Array {
  const enc = decodeBase64(d.enc, 'delivery enc');
  const ct = decodeBase64(d.ciphertext, 'delivery ciphertext');
  return utf8(`${new TextDecoder().decode(deliveryInfo(ctx, d.from, d.to))}enc ${encodeHex(sha256(enc))}\nciphertext ${encodeHex(sha256(ct))}\n`);
}

function refuse(message: string, check: string): BkvError {
  return new BkvError('VERIFICATION_FAILED', message, { check });
}

export class MemberCore {
  readonly id: number;
  readonly x25519PublicKey: Uint8Array;
  readonly ed25519PublicKey: Uint8Array;
  #x25519Seed: Uint8Array;
  #ed25519Seed: Uint8Array;
  #secrets: FleetSecrets | null = null;
  #keyStore: MemberKeyStore;
  #backend: AttestationBackend;
  #env: CoreEnv;

  private constructor(id: number, x: Uint8Array, e: Uint8Array, keyStore: MemberKeyStore, backend: AttestationBackend, env: CoreEnv) {
    this.id = id;
    this.#x25519Seed = x;
    this.#ed25519Seed = e;
    this.x25519PublicKey = x25519.getPublicKey(x);
    this.ed25519PublicKey = ed25519.getPublicKey(e);
    this.#keyStore = keyStore;
    this.#backend = backend;
    this.#env = env;
  }

  /** Generates a new member identity inside the core and stores it (member.bin). */
  static async generate(id: number, env: CoreEnv, backend: AttestationBackend, keyStore: MemberKeyStore): Promise<MemberCore> {
    if (!Number.isInteger(id) || id < 1 || id > 255) throw new BkvError('USAGE', 'member id must be 1..255');
    const core = new MemberCore(id, env.random(32), env.random(32), keyStore, backend, env);
    const bin = new Uint8Array(66);
    bin[0] = MEMBER_BIN_VERSION;
    bin[1] = id;
    bin.set(core.#x25519Seed, 2);
    bin.set(core.#ed25519Seed, 34);
    await keyStore.put('member.bin', bin);
    return core;
  }

  /** The device attests this core's identity keys, the code measurement and the ceremony. */
  async attest(ctx: CeremonyContext, site: string): Promise<AttestationRecord> {
    const body = encodeAttestation({
      namespace: ctx.namespace,
      fleet: ctx.fleetId,
      nonce: ctx.nonce,
      member: this.id,
      site,
      x25519: this.x25519PublicKey,
      ed25519: this.ed25519PublicKey,
      measurement: ctx.measurement,
      device: this.#backend.device,
    });
    return {
      member: this.id,
      attestation: { body: encodeBase64(body), signature: encodeBase64(await this.#backend.signAttestation(body)) },
      deviceCertificate: this.#backend.deviceCertificate(),
    };
  }

  /** Checks a peer's attestation the way this core does before it trusts the peer's keys. */
  static verifyPeer(rec: AttestationRecord, ctx: CeremonyContext): VerifiedAttestation {
    const v = verifyAttestationRecord(rec, { vendorRoots: ctx.vendorRoots, ...(ctx.now !== undefined ? { now: ctx.now } : {}) });
    const st = v.statement;
    if (st.namespace !== ctx.namespace || st.fleet !== ctx.fleetId || encodeHex(st.nonce) !== encodeHex(ctx.nonce)) {
      throw refuse(`member ${rec.member}: attestation is for another ceremony`, 'attestation');
    }
    if (st.measurement !== ctx.measurement) {
      throw refuse(`member ${rec.member}: attested measurement ${st.measurement} is not this fleet's ${ctx.measurement}`, 'measurement');
    }
    return v;
  }

  /** Member 1: generates the fleet secrets inside the core and keeps them in its key store. */
  async generateFleetSecrets(): Promise<FleetPublicKeySet> {
    if (this.#secrets) throw new BkvError('CONFLICT', 'this core already holds fleet secrets');
    const s = await generateFleetSecrets(this.#env);
    await this.#adopt(s);
    return this.fleetPublicKeys();
  }

  async #adopt(s: FleetSecrets): Promise<void> {
    this.#secrets = s;
    await this.#keyStore.put('fleet-secrets.bin', encodeFleetSecrets(s));
  }

  /** The fleet's public keys, derived from the secrets this core holds. */
  async fleetPublicKeys(): Promise<FleetPublicKeySet> {
    const s = this.#need();
    return {
      opaqueServerPublicKey: opaqueServerPublicKey(s),
      encryptionPublicKey: (await deriveChannelKeyPair(s.channelSeed)).publicKey,
      signingPublicKey: signingPublicKey(s),
    };
  }

  #need(): FleetSecrets {
    if (!this.#secrets) throw new BkvError('USAGE', 'this core holds no fleet secrets yet');
    return this.#secrets;
  }

  /**
   * Seals the fleet secrets to a peer: only after verifying the peer's attestation (vendor chain,
   * device signature, this ceremony, this measurement), and only to the X25519 key it attests.
   */
  async sealFleetSecretsFor(peer: AttestationRecord, ctx: CeremonyContext): Promise<SecretsDelivery> {
    const s = this.#need();
    const v = MemberCore.verifyPeer(peer, ctx);
    const to = v.statement.member;
    if (to === this.id) throw new BkvError('USAGE', 'a member does not deliver secrets to itself');
    const recipientPublicKey = await suite.kem.deserializePublicKey(ab(v.statement.x25519));
    const sealed = await suite.seal({ recipientPublicKey, info: ab(deliveryInfo(ctx, this.id, to)) }, ab(encodeFleetSecrets(s)));
    const d = { from: this.id, to, enc: encodeBase64(new Uint8Array(sealed.enc)), ciphertext: encodeBase64(new Uint8Array(sealed.ct)) };
    return { ...d, signature: encodeBase64(ed25519.sign(deliveryMessage(ctx, d), this.#ed25519Seed)) };
  }

  /** Opens a delivery addressed to this core from an attested sender, and keeps the secrets. */
  async receiveFleetSecrets(d: SecretsDelivery, sender: AttestationRecord, ctx: CeremonyContext): Promise<FleetPublicKeySet> {
    if (this.#secrets) throw new BkvError('CONFLICT', 'this core already holds fleet secrets');
    if (d.to !== this.id) throw refuse(`delivery for member ${d.to} offered to member ${this.id}`, 'delivery');
    const v = MemberCore.verifyPeer(sender, ctx);
    if (v.statement.member !== d.from) throw refuse('delivery sender does not match its attestation', 'delivery');
    const sig = decodeBase64(d.signature, 'delivery signature', 64);
    let ok = false;
    try {
      ok = ed25519.verify(sig, deliveryMessage(ctx, d), v.statement.ed25519);
    } catch {
      ok = false;
    }
    if (!ok) throw refuse(`delivery from member ${d.from} is not signed by its attested identity key`, 'delivery');
    const sk = await suite.kem.importKey('raw', ab(this.#x25519Seed), false);
    const pk = await suite.kem.importKey('raw', ab(this.x25519PublicKey), true);
    let plain: ArrayBuffer;
    try {
      plain = await suite.open(
        { recipientKey: { privateKey: sk, publicKey: pk }, enc: ab(decodeBase64(d.enc, 'enc')), info: ab(deliveryInfo(ctx, d.from, d.to)) },
        ab(decodeBase64(d.ciphertext, 'ciphertext')),
      );
    } catch {
      throw refuse(`delivery from member ${d.from} does not decrypt`, 'delivery');
    }
    await this.#adopt(decodeFleetSecrets(new Uint8Array(plain)));
    return this.fleetPublicKeys();
  }

  /** Signs the fleet keys this core derives itself from the secrets it holds. */
  async endorseKeys(fleetId: string): Promise<{ keys: FleetPublicKeySet; signature: Uint8Array }> {
    const keys = await this.fleetPublicKeys();
    return { keys, signature: ed25519.sign(keysEndorsementMessage(fleetId, this.id, keys), this.#ed25519Seed) };
  }

  /**
   * Signs a ceremony transcript. The core signs only a transcript that records its own
   * attestation and the keys it holds, so it cannot be made to vouch for another ceremony.
   */
  async signTranscript(transcript: Uint8Array, ownAttestationBody: Uint8Array): Promise<Uint8Array> {
    const text = new TextDecoder().decode(transcript);
    if (!text.startsWith('bkv-ceremony-transcript/v1\n')) throw new BkvError('USAGE', 'not a ceremony transcript');
    const mine = `attest member=${this.id} out=${encodeHex(sha256(ownAttestationBody))}\n`;
    if (!text.includes(mine)) {
      throw refuse(`the transcript does not record member ${this.id}'s attestation`, 'transcript');
    }
    const keys = await this.fleetPublicKeys();
    const keysHash = encodeHex(sha256(keysEndorsementMessage('', 0, keys)));
    if (!text.includes(`keys=${keysHash}`)) throw refuse('the transcript names other fleet keys than this core holds', 'transcript');
    return ed25519.sign(transcript, this.#ed25519Seed);
  }

  /** Counter-signs a witness statement about this fleet's artifact (the same rule as VaultCore). */
  async counterSign(req: CounterSignRequest, trustedWitnesses: readonly string[]): Promise<Uint8Array> {
    const message = checkCounterSignRequest(req, await this.fleetPublicKeys(), trustedWitnesses);
    return ed25519.sign(message, this.#need().signingSeed);
  }
}

