/**
 * What the host injects into the core: a clock and a source of randomness. The core never reads
 * the system clock or an ambient RNG itself, so a simulator can drive it deterministically.
 */
export interface CoreEnv {
  /** Milliseconds since the Unix epoch, as the host believes it to be. */
  now(): number;
  /** `n` bytes from a CSPRNG (a seeded PRNG in simulation). */
  random(n: number): Uint8Array;
}

/** The production environment: the platform clock and WebCrypto's CSPRNG. */
export const systemEnv: CoreEnv = {
  now: () => Date.now(),
  random: (n) => crypto.getRandomValues(new Uint8Array(n)),
};
