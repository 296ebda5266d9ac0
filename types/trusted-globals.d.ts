/**
 * The only platform globals the trusted core and the shared libraries may use, declared for
 * tsconfig.trusted.json (which compiles src/trusted and src/shared without Node or DOM typings).
 * All exist in browsers, in Node and in the enclave/HSM runtimes the vault core targets.
 */
declare class TextEncoder {
  readonly encoding: string;
  encode(input?: string): Uint8Array<ArrayBuffer>;
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  readonly encoding: string;
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}

interface CryptoKey {
  readonly algorithm: unknown;
  readonly extractable: boolean;
  readonly type: string;
  readonly usages: string[];
}

interface CryptoKeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** WebCrypto's CSPRNG: the only member of `crypto` the core calls (CoreEnv's default randomness). */
declare const crypto: {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
};
