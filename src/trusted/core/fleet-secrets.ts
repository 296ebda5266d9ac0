import { ed25519 } from '@noble/curves/ed25519.js';
import * as opaque from '@serenity-kit/opaque';
import { Reader, Writer } from './codec.js';
import type { CoreEnv } from './env.js';
import { fromB64 } from '../../shared/protocol/messages.js';

/**
 * The fleet's secrets. They are generated inside the core and never leave it in the clear:
 * - the OPAQUE server setup (OPRF seed and the server's static key pair, RFC 9807),
 * - the seed of the X25519 key clients encrypt requests to (HPKE),
 * - the Ed25519 seed of the key that counter-signs witness statements,
 * - the key that seals OPAQUE login state between recovery start and finish,
 * - the key that seals everything the host stores.
 */
export interface FleetSecrets {
  opaqueServerSetup: string;
  channelSeed: Uint8Array;
  signingSeed: Uint8Array;
  loginStateKey: Uint8Array;
  storageKey: Uint8Array;
}

const VERSION = 1;

export async function generateFleetSecrets(env: CoreEnv): Promise<FleetSecrets> {
  await opaque.ready;
  return {
    opaqueServerSetup: opaque.server.createSetup(),
    channelSeed: env.random(32),
    signingSeed: env.random(32),
    loginStateKey: env.random(32),
    storageKey: env.random(32),
  };
}

/** Serialises the secrets for the member's protected storage (the HSM's internal key store). */
export function encodeFleetSecrets(s: FleetSecrets): Uint8Array {
  return new Writer(512)
    .u8(VERSION)
    .string(s.opaqueServerSetup)
    .raw(s.channelSeed)
    .raw(s.signingSeed)
    .raw(s.loginStateKey)
    .raw(s.storageKey)
    .finish();
}

export function decodeFleetSecrets(bytes: Uint8Array): FleetSecrets {
  const r = new Reader(bytes, 'fleet secrets');
  if (r.u8() !== VERSION) throw new Error('unknown fleet secrets version');
  const s = {
    opaqueServerSetup: r.string(1024),
    channelSeed: r.raw(32),
    signingSeed: r.raw(32),
    loginStateKey: r.raw(32),
    storageKey: r.raw(32),
  };
  r.end();
  return s;
}

export function opaqueServerPublicKey(s: FleetSecrets): Uint8Array {
  return fromB64(opaque.server.getPublicKey(s.opaqueServerSetup), 'OPAQUE server public key');
}

export function signingPublicKey(s: FleetSecrets): Uint8Array {
  return ed25519.getPublicKey(s.signingSeed);
}
