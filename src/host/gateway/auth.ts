import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK, type CryptoKey as JoseKey } from 'jose';
import { BkvError } from '../../shared/errors.js';

/**
 * Authenticates the account behind a request. Pluggable: an app plugs in its own identity system.
 * The vault core does not rely on it for secrecy (the password does that); it scopes rate limits
 * and stops one account from spending another's attempts through an honest gateway.
 */
export interface AccountVerifier {
  /** Returns the account named by a valid `Authorization` header, or throws UNAUTHORIZED. */
  verify(authorization: string | undefined): Promise<string>;
}

export const TOKEN_ISSUER = 'bkv-dev-issuer';
export const TOKEN_AUDIENCE = 'bkv-gateway';
const ACCOUNT_RE = /^[A-Za-z0-9._@+-]{1,128}$/;

const CACHE_MAX = 50_000;

/**
 * Verifies EdDSA (Ed25519) signed JWT bearer tokens with `jose`. A token that verified is
 * remembered (by its exact string) until it expires, so a client that sends the same token with
 * every request costs one signature check, not one per request.
 */
export class JwtAccountVerifier implements AccountVerifier {
  private readonly cache = new Map<string, { sub: string; expMs: number }>();

  constructor(
    private readonly key: JoseKey | Uint8Array,
    private readonly issuer = TOKEN_ISSUER,
    private readonly audience = TOKEN_AUDIENCE,
  ) {}

  static async fromJwk(jwk: JWK, issuer?: string, audience?: string): Promise<JwtAccountVerifier> {
    return new JwtAccountVerifier(await importJWK(jwk, 'EdDSA'), issuer, audience);
  }

  async verify(authorization: string | undefined): Promise<string> {
    const m = /^Bearer ([A-Za-z0-9._-]+)$/.exec(authorization ?? '');
    if (!m) throw new BkvError('UNAUTHORIZED', 'missing or malformed bearer token');
    const token = m[1]!;
    const hit = this.cache.get(token);
    if (hit) {
      if (Date.now() < hit.expMs) return hit.sub;
      this.cache.delete(token);
    }
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['EdDSA', 'Ed25519'],
        issuer: this.issuer,
        audience: this.audience,
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.sub !== 'string' || !ACCOUNT_RE.test(payload.sub)) throw new Error('bad subject');
      if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(token, { sub: payload.sub, expMs: (payload.exp as number) * 1000 });
      return payload.sub;
    } catch {
      throw new BkvError('UNAUTHORIZED', 'invalid or expired bearer token');
    }
  }
}

/** A development token issuer: signs short-lived tokens for any account. Never for production. */
export class DevTokenIssuer {
  private constructor(
    private readonly privateKey: JoseKey,
    readonly publicJwk: JWK,
  ) {}

  static async create(): Promise<DevTokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    return new DevTokenIssuer(privateKey, await exportJWK(publicKey));
  }

  async issue(account: string, ttlSeconds = 3600): Promise<string> {
    if (!ACCOUNT_RE.test(account)) throw new BkvError('USAGE', 'account names are 1-128 characters of A-Z a-z 0-9 . _ @ + -');
    return new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA' })
      .setSubject(account)
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(this.privateKey);
  }

  verifier(): Promise<JwtAccountVerifier> {
    return JwtAccountVerifier.fromJwk(this.publicJwk);
  }
}
