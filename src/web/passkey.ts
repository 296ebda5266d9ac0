/**
 * Passkey escrow in the browser: a passkey with the WebAuthn PRF extension yields a secret from
 * which the key wrapping K is derived (src/client/keys/passkey-wrap.ts); the vault core keeps the
 * wrapped K and releases it only for an assertion by the registered credential it verified
 * itself. Without PRF (browser or authenticator) the user is told so and offered the password.
 */
import { BkvError } from '../shared/errors.js';
import { PASSKEY_PRF_INPUT, unwrapWithPasskey, wrapWithPasskey } from '../client/keys/passkey-wrap.js';
import { PasskeyVaultClient, type PasskeyAssertion } from '../client/sdk/passkey-client.js';
import { parseAuthenticatorData } from '../shared/protocol/webauthn.js';
import { fleetFromConfig, transportFor, type WebConfig } from './vault-config.js';

export const NO_PRF_MESSAGE =
  'This browser or passkey cannot derive encryption keys (the WebAuthn PRF extension is missing), so it cannot protect your backup key. Choose a password instead, or use a browser and passkey provider with PRF support.';

export const NO_PRF_RESTORE_MESSAGE =
  'This browser or passkey cannot derive encryption keys (the WebAuthn PRF extension is missing), so it cannot unlock the backup here. Open this page in a browser whose passkey provider supports PRF, or restore with the recovery key or password instead.';

/** A BkvError whose details tell the app to fall back to the password path. */
export class NoPrfError extends BkvError {
  constructor(restoring = false) {
    super('USAGE', restoring ? NO_PRF_RESTORE_MESSAGE : NO_PRF_MESSAGE, { noPrf: true });
  }
}

type PrfResults = { enabled?: boolean; results?: { first?: ArrayBuffer } };
const prfOf = (c: PublicKeyCredential) => (c.getClientExtensionResults() as { prf?: PrfResults }).prf;
const bytes = (b: ArrayBuffer | ArrayBufferView) => (b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).slice();

/** Null when passkeys with PRF look usable here; otherwise a short reason for the labels. */
export async function prfSupportMessage(): Promise<string | null> {
  if (!window.isSecureContext || !('PublicKeyCredential' in window) || !navigator.credentials) return 'not available in this browser';
  const caps = (PublicKeyCredential as unknown as { getClientCapabilities?: () => Promise<Record<string, boolean>> }).getClientCapabilities;
  if (caps) {
    try {
      const c = await caps.call(PublicKeyCredential);
      if (c['extension:prf'] === false) return 'this browser lacks the PRF extension';
    } catch {
      /* unknown: try when asked */
    }
  }
  return null;
}

function client(config: WebConfig, account: string): PasskeyVaultClient {
  return new PasskeyVaultClient({ account, fleet: fleetFromConfig(config, location.origin), transport: transportFor(config, location.origin, account) });
}

async function assert(challenge: Uint8Array, allow: Uint8Array | null, restoring: boolean): Promise<{ credentialId: Uint8Array; assertion: PasskeyAssertion; prf: Uint8Array }> {
  let cred: PublicKeyCredential | null;
  try {
    cred = (await navigator.credentials.get({
      publicKey: {
        challenge: challenge as BufferSource,
        rpId: location.hostname,
        userVerification: 'required',
        timeout: 120_000,
        ...(allow ? { allowCredentials: [{ type: 'public-key', id: allow as BufferSource }] } : {}),
        extensions: { prf: { eval: { first: PASSKEY_PRF_INPUT as BufferSource } } } as AuthenticationExtensionsClientInputs,
      },
    })) as PublicKeyCredential | null;
  } catch (e) {
    throw new BkvError('USAGE', `The passkey was not used (${(e as Error).message}). Try again, or use the recovery key or password.`);
  }
  if (!cred) throw new BkvError('USAGE', 'No passkey was chosen. Try again.');
  const first = prfOf(cred)?.results?.first;
  if (!first) throw new NoPrfError(restoring);
  const r = cred.response as AuthenticatorAssertionResponse;
  return {
    credentialId: bytes(cred.rawId),
    assertion: { authenticatorData: bytes(r.authenticatorData), clientDataJSON: bytes(r.clientDataJSON), signature: bytes(r.signature) },
    prf: bytes(first),
  };
}

/** Creates a passkey for `account`, derives the wrapping key from its PRF, and escrows K in the vault. */
export async function passkeyEscrow(config: WebConfig, account: string, k: Uint8Array): Promise<void> {
  if (!('PublicKeyCredential' in window)) throw new NoPrfError();
  let created: PublicKeyCredential | null;
  try {
    created = (await navigator.credentials.create({
      publicKey: {
        rp: { name: 'bkv backups', id: location.hostname },
        user: { id: crypto.getRandomValues(new Uint8Array(16)), name: account, displayName: account },
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        pubKeyCredParams: [
          { type: 'public-key', alg: -8 },
          { type: 'public-key', alg: -7 },
        ],
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        attestation: 'none',
        timeout: 120_000,
        extensions: { prf: {} } as AuthenticationExtensionsClientInputs,
      },
    })) as PublicKeyCredential | null;
  } catch (e) {
    throw new BkvError('USAGE', `No passkey was created (${(e as Error).message}). Try again, or choose a recovery key or password.`);
  }
  if (!created) throw new BkvError('USAGE', 'No passkey was created. Try again.');
  if (prfOf(created)?.enabled === false) throw new NoPrfError();
  const att = created.response as AuthenticatorAttestationResponse;
  const ad = parseAuthenticatorData(bytes(att.getAuthenticatorData()));
  if (!ad.attested) throw new BkvError('MALFORMED', 'the new passkey came without its public key');
  const credentialId = bytes(created.rawId);
  const vault = client(config, account);
  // The PRF output comes from an assertion (some authenticators give none at creation); the same
  // assertion proves to the vault core that the credential's key is real and held.
  const a = await assert(await vault.challenge(), credentialId, false);
  const wrapped = wrapWithPasskey(a.prf, account, credentialId, k);
  a.prf.fill(0);
  await vault.register({ credentialId, cosePublicKey: ad.attested.cosePublicKey, wrappedKey: wrapped, assertion: a.assertion });
}

/** Any device with the (synced) passkey: the vault releases the wrapped K after verifying an assertion. */
export async function passkeyRecover(config: WebConfig, account: string): Promise<Uint8Array> {
  const vault = client(config, account);
  const a = await assert(await vault.challenge(), null, true);
  const wrapped = await vault.recover({ credentialId: a.credentialId, assertion: a.assertion });
  try {
    return unwrapWithPasskey(a.prf, account, a.credentialId, wrapped);
  } finally {
    a.prf.fill(0);
  }
}
