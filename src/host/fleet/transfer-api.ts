/**
 * The member API's side of range transfers between replication groups (docs/groups.md, docs/api.md
 * "Range transfers"): `POST /v1/groups/<g>/transfer` with a JSON `op`, run by this member's node of
 * group g, which must lead the group. Every decision is the group core's (`TransferCoordinator`):
 * this host code only carries its messages in and out as base64 and lists the ids of the moving
 * range from its own record store for the source core to read and prove.
 */
import type { FastifyInstance } from 'fastify';
import { BkvError } from '../../shared/errors.js';
import { fromB64, toB64 } from '../../shared/protocol/messages.js';
import { SLOTS, slotFirstId, type KeyRange } from '../../trusted/groups/range.js';
import type { TransferCoordinator } from '../../trusted/groups/transfer.js';
import type { GroupReplica } from './group-replica.js';

/** Records per chunk message (the core's limit is 256 per batch). */
export const CHUNK_RECORDS = 256;

export type TransferOp =
  | { op: 'start'; dest: number; start: number; end: number }
  | { op: 'offer' }
  | { op: 'cancel' }
  | { op: 'chunk'; index: number; after?: string | null }
  | { op: 'prepare'; offer: string }
  | { op: 'receive'; chunk: string }
  | { op: 'accept' }
  | { op: 'refuse'; source: number; seq: number; cancel?: string }
  | { op: 'reply'; source: number }
  | { op: 'finish'; reply: string };

const hexToBytes = (h: string): Uint8Array => {
  if (!/^[0-9a-f]{64}$/.test(h)) throw new BkvError('USAGE', '`after` must be a record id in hex (64 digits)');
  return new Uint8Array(Buffer.from(h, 'hex'));
};
const isInt = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;

/** Ids of `range` in this member's store after `after` (exclusive), in order, at most `limit`. */
async function idsAfter(r: GroupReplica, range: KeyRange, after: Uint8Array | null, limit: number): Promise<Uint8Array[]> {
  const from = after ?? slotFirstId(range.start);
  const to = range.end >= SLOTS ? null : slotFirstId(range.end);
  const ids = await r.store.listKeys(from, to, limit + 1);
  const out = after ? ids.filter((k) => Buffer.compare(k, after) > 0) : ids;
  return out.slice(0, limit);
}

export function registerTransferApi(
  app: FastifyInstance,
  o: { replicaOf: (g: number | null) => GroupReplica; multi: boolean; tagGroup: (err: unknown, g: number) => unknown },
): void {
  app.post('/v1/groups/:group/transfer', async (req) => {
    const g = Number((req.params as { group: string }).group);
    if (!o.multi) throw new BkvError('USAGE', 'this fleet runs one replication group: there is nothing to transfer');
    if (!isInt(g, 63)) throw new BkvError('USAGE', 'the group must be a number 0 to 63');
    const r = o.replicaOf(g);
    const t = r.transfers as TransferCoordinator;
    const b = (req.body ?? {}) as TransferOp;
    try {
      switch (b.op) {
        case 'start': {
          if (!isInt(b.dest, 63) || !isInt(b.start, SLOTS) || !isInt(b.end, SLOTS) || b.start >= b.end) throw new BkvError('USAGE', 'start needs dest and a slot range start < end');
          o.replicaOf(b.dest);
          return { offer: toB64(await t.start({ start: b.start, end: b.end }, b.dest)) };
        }
        case 'offer':
          return { offer: toB64(t.offer()) };
        case 'cancel':
          return { cancel: toB64(t.cancel()) };
        case 'chunk': {
          if (!isInt(b.index, 0xffffffff)) throw new BkvError('USAGE', 'chunk needs an index');
          const out = r.stateMachine.group?.outgoing;
          if (!out) throw new BkvError('CONFLICT', `group ${g} has no outgoing transfer`, { reason: 'wrong-phase' });
          const ids = await idsAfter(r, out.range, b.after ? hexToBytes(b.after) : null, CHUNK_RECORDS);
          if (ids.length === 0) return { chunk: null, next: null, records: 0 };
          const last = ids[ids.length - 1]!;
          return { chunk: toB64(await t.chunk(b.index, ids)), next: Buffer.from(last).toString('hex'), records: ids.length };
        }
        case 'prepare':
          await t.prepare(fromB64(b.offer, 'offer'));
          return { prepared: true };
        case 'receive':
          return { records: await t.receive(fromB64(b.chunk, 'chunk')) };
        case 'accept':
          return { reply: toB64(await t.accept()) };
        case 'refuse':
          if (!isInt(b.source, 63) || !isInt(b.seq, 0xffffffff)) throw new BkvError('USAGE', 'refuse needs source and seq');
          return { reply: toB64(await t.refuse(b.source, b.seq, b.cancel ? fromB64(b.cancel, 'cancel') : undefined)) };
        case 'reply':
          if (!isInt(b.source, 63)) throw new BkvError('USAGE', 'reply needs source');
          return { reply: toB64(t.reply(b.source)) };
        case 'finish':
          return { outcome: await t.finish(fromB64(b.reply, 'reply')) };
        default:
          throw new BkvError('USAGE', 'op must be start, offer, cancel, chunk, prepare, receive, accept, refuse, reply or finish');
      }
    } catch (err) {
      throw o.tagGroup(err, g);
    }
  });
}
