/**
 * The consensus cluster id of one replication group. A member's nodes of different groups share its
 * identity key, and the consensus MAC keys are salted with the cluster id (consensus/auth.ts), so
 * each group's node is keyed with an id that names the group: a host cannot carry one group's votes
 * or appends into another group's node (they fail the MAC like a forgery). Derived inside the
 * trusted assembly (member.ts) from the fleet's cluster id and the group id the core was started
 * with; the host supplies only the fleet's. Bytes: docs/formats/groups.md.
 */
import { sha256 } from '@noble/hashes/sha2.js';

const LABEL = new TextEncoder().encode('bkv group cluster id v1');

/** SHA-256(label ‖ u8 len(clusterId) ‖ clusterId ‖ u8 groupId): 32 bytes. */
export function groupClusterId(fleetClusterId: Uint8Array, groupId: number): Uint8Array {
  if (!Number.isInteger(groupId) || groupId < 0 || groupId > 255) throw new RangeError(`group id ${groupId} is out of range`);
  if (fleetClusterId.length > 255) throw new RangeError('cluster id longer than 255 bytes');
  const input = new Uint8Array(LABEL.length + 1 + fleetClusterId.length + 1);
  input.set(LABEL, 0);
  input[LABEL.length] = fleetClusterId.length;
  input.set(fleetClusterId, LABEL.length + 1);
  input[input.length - 1] = groupId;
  return sha256(input);
}
