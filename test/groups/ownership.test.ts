import { describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { FULL_RANGE, alignedBlocks, genesisRange, SLOTS } from '../../src/trusted/groups/range.js';
import { encodeBatch } from '../../src/trusted/records/batch.js';
import { recordId } from '../../src/trusted/records/record-keys.js';
import { RecordState, SNAPSHOT_VERSION_GROUPS, decodeAppliedOutcome } from '../../src/trusted/records/record-state.js';
import { KEYS } from '../records/harness.js';
import { GROUP_KEYS, attempt, fingerprint, makeGroup, register, usersIn } from './harness.js';

describe('record-id ranges', () => {
  it('genesis splits the space evenly and covers every slot exactly once', () => {
    for (const n of [1, 2, 3, 5, 64]) {
      let at = 0;
      for (let i = 0; i < n; i++) {
        const r = genesisRange(i, n);
        expect(r.start).toBe(at);
        at = r.end;
      }
      expect(at).toBe(SLOTS);
    }
    expect(genesisRange(3, 3)).toEqual({ start: 0, end: 0 });
  });

  it('aligned blocks tile a range, at most 62 of them', () => {
    for (const r of [FULL_RANGE, genesisRange(1, 3), { start: 1, end: SLOTS - 1 }, { start: 5, end: 6 }]) {
      const blocks = alignedBlocks(r);
      let at = r.start;
      for (const b of blocks) {
        expect(b.slot).toBe(at);
        const size = 2 ** (32 - b.depth);
        expect(b.slot % size).toBe(0);
        at += size;
      }
      expect(at).toBe(r.end);
      expect(blocks.length).toBeLessThanOrEqual(62);
    }
  });
});

describe('ownership check', () => {
  it('a request routed to the wrong group is refused with WRONG_GROUP naming the owner, and changes nothing', async () => {
    const g0 = makeGroup(0, 3);
    const [mine] = usersIn(genesisRange(0, 3), 1);
    const [theirs] = usersIn(genesisRange(2, 3), 1);
    await g0.batcher.execute(register(mine!));
    const before = fingerprint(g0);
    const err = await g0.batcher.execute(register(theirs!)).then(() => null, (e: unknown) => e);
    expect(isBkvError(err, 'WRONG_GROUP')).toBe(true);
    expect((err as { details: Record<string, unknown> }).details).toMatchObject({ group: 0, owner: 2, moving: false });
    const err2 = await g0.batcher.execute(attempt(theirs!)).then(() => null, (e: unknown) => e);
    expect(isBkvError(err2, 'WRONG_GROUP')).toBe(true);
    expect(fingerprint(g0)).toBe(before);
  });

  it('a committed batch that touches a record the group does not serve applies as stale and changes nothing', async () => {
    const g0 = makeGroup(0, 2);
    const [theirs] = usersIn(genesisRange(1, 2), 1);
    const key = recordId(KEYS, theirs!);
    const res = await g0.store.read([key]);
    const before = g0.state.snapshot().subarray(10); // all but the applied index
    const out = decodeAppliedOutcome(g0.state.apply(1, encodeBatch({ kind: 'commands', ts: 1, items: [{ key, proof: res.reads[0]!.proof, value: new Uint8Array(50) }] })));
    expect(out.status).toBe('stale');
    const t = decodeAppliedOutcome(g0.state.apply(2, encodeBatch({ kind: 'transfer', ts: 1, items: [{ key, proof: res.reads[0]!.proof, value: new Uint8Array(50) }] })));
    expect(t.status).toBe('invalid'); // no incoming transfer
    expect(g0.state.root).toEqual(new RecordState({ id: 0, groups: 2, keys: GROUP_KEYS }).root);
    expect(g0.state.count).toBe(0);
    expect(g0.state.snapshot().subarray(10)).toEqual(before);
  });

  it('without groups the snapshot is version 1 (59 bytes) as before; with groups version 2, restored exactly', async () => {
    expect(new RecordState().snapshot()).toHaveLength(59);
    expect(new RecordState().snapshot()[1]).toBe(1);
    const g = makeGroup(1, 3);
    await g.batcher.execute(register(usersIn(genesisRange(1, 3), 1)[0]!));
    const snap = g.state.snapshot();
    expect(snap[1]).toBe(SNAPSHOT_VERSION_GROUPS);
    const back = new RecordState({ id: 1, groups: 3, keys: GROUP_KEYS });
    back.restore(snap);
    expect(back.snapshot()).toEqual(snap);
    expect(back.group!.owned).toEqual(genesisRange(1, 3));
    // A snapshot of another group is refused.
    expect(() => new RecordState({ id: 2, groups: 3, keys: GROUP_KEYS }).restore(snap)).toThrow(/group 1 of 3/);
    // A fleet without groups does not read a group snapshot.
    expect(() => new RecordState().restore(snap)).toThrow(/version 2/);
  });
});
