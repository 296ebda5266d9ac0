import type { ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';

/**
 * What the host injects into the core: a clock, a source of randomness, and optionally the
 * primitives of the client channel. The core never reads the system clock or an ambient RNG
 * itself, so a simulator can drive it deterministically.
 */
export interface CoreEnv {
  /** Milliseconds since the Unix epoch, as the host believes it to be. */
  now(): number;
  /** `n` bytes from a CSPRNG (a seeded PRNG in simulation). */
  random(n: number): Uint8Array;
  /**
   * X25519, HMAC-SHA256 and AES-256-GCM for the client channel (HPKE and replies). Default: the
   * @noble implementations. A host may hand in native ones (an HSM's own, node:crypto on a
   * software member); they must compute the same functions.
   */
  channelPrimitives?: ChannelPrimitives;
}

/** The production environment: the platform clock and WebCrypto's CSPRNG. */
export const systemEnv: CoreEnv = {
  now: () => Date.now(),
  random: (n) => crypto.getRandomValues(new Uint8Array(n)),
};
