/**
 * The ownership check: a group serves only the record ids of its committed range that are not
 * moving out. A request for any other id is refused with WRONG_GROUP, naming the group this one
 * believes owns it, so the untrusted gateway (which cannot compute record ids) can re-route.
 */
import { BkvError } from '../../shared/errors.js';
import type { GroupState } from './state.js';

export function wrongGroup(group: GroupState, id: Uint8Array): BkvError {
  const { owner, moving } = group.ownerOf(id);
  const details: Record<string, unknown> = { group: group.id, moving };
  if (owner !== null && owner !== group.id) details.owner = owner;
  const why = moving ? 'its range is being transferred; retry shortly' : owner !== null && owner !== group.id ? `ask group ${owner}` : 'no known owner';
  return new BkvError('WRONG_GROUP', `replication group ${group.id} does not serve this record (${why})`, details);
}

/** Throws WRONG_GROUP unless `group` (when there is one) serves `id` now. */
export function checkOwnership(group: GroupState | null, id: Uint8Array): void {
  if (group && !group.serves(id)) throw wrongGroup(group, id);
}
