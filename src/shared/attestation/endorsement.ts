/** What members sign about the fleet keys (docs/formats/evidence.md). Browser-safe, light: no OPAQUE, no HPKE. */
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeBase64, encodeHex, utf8 } from '../fleet-formats/encoding.js';

export interface FleetPublicKeySet {
  opaqueServerPublicKey: Uint8Array;
  encryptionPublicKey: Uint8Array;
  signingPublicKey: Uint8Array;
}

/** The message every member signs to endorse the fleet keys (docs/formats/evidence.md). */
export function keysEndorsementMessage(fleetId: string, member: number, k: FleetPublicKeySet): Uint8Array {
  return utf8(
    `bkv-fleet-keys-endorsement/v1\nfleet ${fleetId}\nmember ${member}\nopaque-server ${encodeBase64(k.opaqueServerPublicKey)}\n` +
      `encryption ${encodeBase64(k.encryptionPublicKey)}\nsigning ${encodeBase64(k.signingPublicKey)}\n`,
  );
}

/** Hash of the fleet keys as the transcript records them (`keys=` in the generate step). */
export function fleetKeysHash(keys: FleetPublicKeySet): string {
  return encodeHex(sha256(keysEndorsementMessage('', 0, keys)));
}
