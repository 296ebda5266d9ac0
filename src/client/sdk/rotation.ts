/**
 * Fleet rotation on the client (docs/rotation.md). Browser-safe.
 *
 * A new fleet is published as the next epoch of the namespace while the old one keeps serving.
 * A client recovers from the new fleet if its key is already there; otherwise from the old fleet,
 * and then re-registers K with the new fleet under the same password (and erases the old record),
 * so each user's K moves when the user next recovers. After the old fleet's retirement time the
 * client no longer tries it.
 */
import { isBkvError } from '../../shared/errors.js';
import { NotRegisteredError } from './errors.js';
import type { VaultClient } from './vault-client.js';

export interface RotationOptions {
  /** A client of the fleet being retired (its keys as validated for its epoch). */
  oldFleet: VaultClient;
  /** A client of the current fleet (keys learnt over the air for the newest epoch). */
  newFleet: VaultClient;
  /** Milliseconds since the Unix epoch after which the old fleet is no longer asked. */
  oldFleetRetiresAt?: number;
  now?: () => number;
  /** Erase the record at the old fleet once K is registered with the new one (default true). */
  eraseOld?: boolean;
}

export interface RotationResult {
  key: Uint8Array;
  /** Where K came from. */
  source: 'new-fleet' | 'old-fleet';
  /** K was re-registered with the new fleet during this call. */
  migrated: boolean;
  /** The old fleet's record was erased (only when migrated). */
  oldErased: boolean;
}

export async function recoverWithRotation(password: string, o: RotationOptions): Promise<RotationResult> {
  try {
    return { key: await o.newFleet.recoverKey(password), source: 'new-fleet', migrated: false, oldErased: false };
  } catch (e) {
    if (!isBkvError(e, 'NOT_REGISTERED')) throw e; // a wrong password at the new fleet is final
  }
  const now = (o.now ?? Date.now)();
  if (o.oldFleetRetiresAt !== undefined && now >= o.oldFleetRetiresAt) throw new NotRegisteredError();
  const key = await o.oldFleet.recoverKey(password);
  await o.newFleet.registerKey(password, key);
  let oldErased = false;
  if (o.eraseOld ?? true) {
    try {
      await o.oldFleet.deleteKey(password);
      oldErased = true;
    } catch {
      // The old record retires with its fleet; K is safe at the new fleet already.
    }
  }
  return { key, source: 'old-fleet', migrated: true, oldErased };
}
