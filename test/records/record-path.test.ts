import { describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { equalBytes } from '../../src/shared/bytes.js';
import { encodeBatch } from '../../src/trusted/records/batch.js';
import { recordId, sealRecord } from '../../src/trusted/records/record-keys.js';
import { RecordState, decodeAppliedOutcome, decodeSnapshot } from '../../src/trusted/records/record-state.js';
import type { Command } from '../../src/trusted/records/commands.js';
import { InstantLog, KEYS, settle } from './harness.js';

const KSF = { memory: 256, iterations: 1, parallelism: 1 };
const reg = (user: string, limit = 3): Command => ({ type: 'register', ts: 1, user, opaqueRecord: new Uint8Array(192).fill(1), wrappedKey: new Uint8Array(60).fill(2), ksf: KSF, limit });
let n = 0;
const attempt = (user: string): Command => ({ type: 'attempt', ts: 2, user, attemptId: new Uint8Array(16).fill(++n % 256).map((x, i) => (i === 0 ? n >> 8 : x)) });

describe('the record path: batcher, record state, store writer', () => {
  it('commits each command as a batch, and every member ends with the same root as its store', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const b = log.addMember();
    const batcher = log.batcher(a);
    expect(await batcher.execute(reg('alice'))).toMatchObject({ kind: 'register', r: { status: 'registered', attemptsRemaining: 3 } });
    expect(await batcher.execute(attempt('alice'))).toMatchObject({ r: { status: 'granted', attemptsRemaining: 2 } });
    expect(await batcher.execute(attempt('nobody'))).toMatchObject({ r: { status: 'unknown' } });
    await settle(log);
    for (const m of [a, b]) {
      expect(m.state.count).toBe(1);
      expect(equalBytes((await m.store.meta()).root, m.state.root)).toBe(true);
    }
    expect(equalBytes(a.state.root, b.state.root)).toBe(true);
    // Three batches, one per request, even the one that changed nothing.
    expect(a.state.lastBatchIndex).toBe(3);
  });

  it('grants exactly the limit to 50 concurrent attempts, in shared batches', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const batcher = log.batcher(a);
    await batcher.execute(reg('bob', 10));
    const results = await Promise.all(Array.from({ length: 50 }, () => batcher.execute(attempt('bob'))));
    expect(results.filter((r) => r.kind === 'attempt' && r.r.status === 'granted')).toHaveLength(10);
    expect(batcher.stats.batches).toBeLessThan(51);
  });

  it('treats a batch built against another root as stale, and changes nothing', async () => {
    const log = new InstantLog();
    const m = log.addMember();
    await log.batcher(m).execute(reg('seed'));
    await settle(log);
    const idA = recordId(KEYS, 'a');
    const idB = recordId(KEYS, 'b');
    const { reads } = await m.store.read([idA, idB]);
    const value = (id: Uint8Array) => sealRecord(KEYS, id, { status: 'erased', version: 1 }, new Uint8Array(12));
    const b1 = encodeBatch({ kind: 'commands', ts: 0, items: [{ key: idA, proof: reads[0]!.proof, value: value(idA) }] });
    const b2 = encodeBatch({ kind: 'commands', ts: 0, items: [{ key: idB, proof: reads[1]!.proof, value: value(idB) }] });
    expect(decodeAppliedOutcome(await log.propose(b1)).status).toBe('applied');
    const root = m.state.root;
    expect(decodeAppliedOutcome(await log.propose(b2)).status).toBe('stale');
    expect(equalBytes(m.state.root, root)).toBe(true);
    expect(m.state.count).toBe(2);
    // Replaying the first batch again is stale too: its proof of absence no longer holds.
    expect(decodeAppliedOutcome(await log.propose(b1)).status).toBe('stale');
  });

  it('refuses a batch whose proof claims an existing record is absent (no reset counter, no extra record)', async () => {
    const log = new InstantLog();
    const m = log.addMember();
    await log.batcher(m).execute(reg('victim', 3));
    for (let i = 0; i < 15; i++) await log.batcher(m).execute(reg(`user-${i}`));
    await log.batcher(m).execute(attempt('victim'));
    await settle(log);
    const id = recordId(KEYS, 'victim');
    // A real proof of absence (an empty subtree on its path), but for another key.
    let absentProof: Uint8Array | undefined;
    for (let i = 0; !absentProof; i++) {
      const p = (await m.store.read([recordId(KEYS, `nobody-${i}`)])).reads[0]!.proof;
      if (p[1] === 0) absentProof = p;
    }
    const fresh = sealRecord(KEYS, id, { status: 'live', version: 1, opaqueRecord: new Uint8Array(192), wrappedKey: new Uint8Array(60), ksf: KSF, limit: 3, attemptsRemaining: 3, open: [], recent: [] }, new Uint8Array(12));
    const root = m.state.root;
    for (const proof of [absentProof, new Uint8Array([1, 0, 0, 0])]) {
      const entry = encodeBatch({ kind: 'commands', ts: 0, items: [{ key: id, proof, value: fresh }] });
      expect(decodeAppliedOutcome(await log.propose(entry)).status).toBe('stale');
      expect(equalBytes(m.state.root, root)).toBe(true);
      expect(m.state.count).toBe(16);
    }
    expect(await log.batcher(m).execute(attempt('victim'))).toMatchObject({ r: { status: 'granted', attemptsRemaining: 1 } });
  });

  it('accepts imports only before the first command batch, and never over an existing record', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const batcher = log.batcher(a);
    const live = { status: 'live' as const, version: 1, opaqueRecord: new Uint8Array(192), wrappedKey: new Uint8Array(60), ksf: KSF, limit: 5, attemptsRemaining: 2, open: [], recent: [] };
    expect(await batcher.importRecords([{ account: 'old-1', record: live }, { account: 'old-2', record: { status: 'destroyed', version: 4 } }])).toBe(2);
    await expect(batcher.importRecords([{ account: 'old-1', record: live }])).rejects.toSatisfy((e) => isBkvError(e, 'CONFLICT'));
    expect(await batcher.execute(attempt('old-1'))).toMatchObject({ r: { status: 'granted', attemptsRemaining: 1 } });
    expect(await batcher.execute(attempt('old-2'))).toMatchObject({ r: { status: 'locked' } });
    // The window is closed: a hostile host's import batch (with a valid proof) is refused by every member.
    await settle(log);
    const id = recordId(KEYS, 'sneaky');
    const read = await a.store.read([id]);
    const entry = encodeBatch({ kind: 'import', ts: 0, items: [{ key: id, proof: read.reads[0]!.proof, value: sealRecord(KEYS, id, live, new Uint8Array(12)) }] });
    expect(decodeAppliedOutcome(await log.propose(entry)).status).toBe('invalid');
    expect(a.state.count).toBe(2);
  });

  for (const fault of ['swap', 'delete', 'forge', 'rollback', 'torn'] as const) {
    it(`detects a store that ${fault}s records, answers nothing from it, and repairs it from a peer`, async () => {
      const log = new InstantLog();
      const a = log.addMember();
      log.addMember();
      const batcher = log.batcher(a);
      await batcher.execute(reg('carol', 3));
      await batcher.execute(reg('dave', 3));
      const early = a.store.snapshot();
      await batcher.execute(attempt('carol'));
      await settle(log);
      const idC = recordId(KEYS, 'carol');
      const idD = recordId(KEYS, 'dave');
      if (fault === 'swap') a.store.swapValues(idC, idD);
      if (fault === 'delete') a.store.deleteRow(idC);
      if (fault === 'forge') a.store.forgeValue(idC, new Uint8Array(100).fill(7));
      if (fault === 'rollback') a.store.rollbackTo(early);
      if (fault === 'torn') a.store.tornApply(a.state.lastBatchIndex + 1, [{ key: idC, value: new Uint8Array(80).fill(9) }], 'records');
      const res = await batcher.execute(attempt('carol')).then((r) => r, (e: unknown) => e);
      if (isBkvError(res)) {
        expect(res.code).toBe('UNAVAILABLE');
      } else {
        // The writer noticed first (a root mismatch on its next write) and repaired before the read.
        expect(res).toMatchObject({ r: { status: 'granted', attemptsRemaining: 1 } });
      }
      // The store is repaired from the peer; then carol has exactly the attempts she paid for.
      for (let i = 0; i < 100 && a.records.status().state !== 'in-step'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(a.records.status().state).toBe('in-step');
      const again = await batcher.execute(attempt('carol'));
      expect(again).toMatchObject({ r: { status: isBkvError(res) ? 'granted' : 'granted', attemptsRemaining: isBkvError(res) ? 1 : 0 } });
    });
  }

  it('replays the batches committed while a repair streams in, so one repair suffices', async () => {
    const log = new InstantLog();
    const leader = log.addMember();
    const follower = log.addMember(true, 15);
    const batcher = log.batcher(leader);
    await batcher.execute(reg('r0'));
    await settle(log);
    const early = follower.store.snapshot();
    for (let i = 1; i < 6; i++) await batcher.execute(reg(`r${i}`));
    await settle(log);
    // The follower's database is put back to an older copy: its next root report fails.
    follower.store.rollbackTo(early);
    await batcher.execute(attempt('r1'));
    for (let i = 0; i < 20 && follower.records.status().state !== 'repairing'; i++) await new Promise((r) => setTimeout(r, 2));
    // The copy streams one record per 15 ms: commit more batches meanwhile.
    for (let i = 0; i < 4; i++) await batcher.execute(attempt(`r${2 + i}`));
    for (let i = 0; i < 300 && follower.records.status().state !== 'in-step'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(follower.records.status(), follower.events.join('\n')).toMatchObject({ state: 'in-step', repairs: 1 });
    expect(equalBytes((await follower.store.meta()).root, leader.state.root)).toBe(true);
  });

  it('without a peer, a broken store stays refused', async () => {
    const log = new InstantLog();
    const a = log.addMember(false);
    const batcher = log.batcher(a);
    await batcher.execute(reg('erin', 3));
    await settle(log);
    a.store.swapValues(recordId(KEYS, 'erin'), recordId(KEYS, 'erin'));
    a.store.forgeValue(recordId(KEYS, 'erin'), new Uint8Array(90));
    await expect(batcher.execute(attempt('erin'))).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    await expect(batcher.execute(attempt('erin'))).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    expect(a.state.storeHealth().state).toBe('corrupt');
    expect(a.state.compactionPoint()).toBeNull();
  });

  it('snapshots the root, not the records, and refuses release 0.1 snapshots with a clear error', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const batcher = log.batcher(a);
    for (let i = 0; i < 20; i++) await batcher.execute(reg(`u${i}`));
    const snap = a.state.snapshot();
    expect(snap.length).toBe(59);
    const s2 = new RecordState();
    s2.restore(snap);
    expect(equalBytes(s2.root, a.state.root)).toBe(true);
    expect(s2.count).toBe(20);
    expect(decodeSnapshot(snap).importOpen).toBe(false);
    expect(() => s2.restore(new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_VERSION' }));
    await settle(log);
    expect(a.state.compactionPoint()?.index).toBe(a.state.lastBatchIndex);
  });
});
