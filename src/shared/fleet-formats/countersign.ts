/**
 * The fleet's counter-signature over the witness signature. Browser-safe.
 *
 * The fleet signs, with the Ed25519 signing key named in the epoch's artifact (role "signing"):
 *
 *   message = UTF-8("bkv-fleet-countersignature/v1\n") ‖ witness signature (64 bytes)
 *
 * The vault core computes `counterSignatureMessage(witnessSig)` and signs it; nobody else holds
 * the key. Clients and auditors check it with `verifyCounterSignature`.
 */
import { BkvError } from '../errors.js';
import { utf8 } from './encoding.js';
import { safeVerify } from './note.js';
import { concatBytes } from '../bytes.js';

export const COUNTERSIGNATURE_PREFIX = 'bkv-fleet-countersignature/v1\n';

export function counterSignatureMessage(witnessSig: Uint8Array): Uint8Array {
  if (witnessSig.length !== 64) throw new BkvError('MALFORMED', 'witness signature must be 64 bytes');
  return concatBytes(utf8(COUNTERSIGNATURE_PREFIX), witnessSig);
}

/** Throws VERIFICATION_FAILED unless `counterSig` is the fleet signing key's signature. */
export function verifyCounterSignature(
  witnessSig: Uint8Array,
  counterSig: Uint8Array,
  fleetSigningPublicKey: Uint8Array,
): void {
  if (counterSig.length !== 64 || !safeVerify(counterSig, counterSignatureMessage(witnessSig), fleetSigningPublicKey)) {
    throw new BkvError('VERIFICATION_FAILED', 'fleet counter-signature is not valid for the signing key in the artifact', {
      check: 'counter-signature',
    });
  }
}
