import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulator.js';
import { VaultWorkload } from '../../src/sim/vault-workload.js';

const VIOLATION = /committed entry at index \d+ changed|guess limit exceeded|not recoverable|two leaders|differs from the replay/;

describe('deterministic simulator', () => {
  it('finds no invariant violation running the vault on record stores, every fault (store faults included) enabled', async () => {
    const failures: string[] = [];
    let storeFaults = 0;
    let storeRepairs = 0;
    for (let seed = 1; seed <= 4; seed++) {
      const r = await runSimulation({ seed, ops: 100, members: seed % 3 === 0 ? 3 : 5 });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
      storeFaults += r.stats.storeFaults;
      storeRepairs += r.stats.storeRepairs;
    }
    expect(failures).toEqual([]);
    expect(storeFaults).toBeGreaterThan(0);
    expect(storeRepairs).toBeGreaterThan(0);
  });

  it('a leader whose store is rolled back under it gets it repaired (seed 4 stalled for good before the batcher treated it as corrupt)', async () => {
    const r = await runSimulation({ seed: 4, ops: 120 });
    expect(r.violations).toEqual([]);
    expect(r.stats.storeRepairs).toBeGreaterThan(0);
  });

  it('finds no invariant violation with the escrow model workload', async () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 6; seed++) {
      const r = await runSimulation({ seed, ops: 300, members: seed % 2 === 0 ? 3 : 5, workload: 'escrow' });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
    }
    expect(failures).toEqual([]);
  });

  it('the vault workload exercises grants, key mismatches, recoveries, wrong passwords and lockouts', async () => {
    const w = new VaultWorkload();
    const r = await runSimulation({ seed: 8, ops: 300, workload: w });
    expect(r.ok).toBe(true);
    const seen = w.summary();
    expect(seen.granted).toBeGreaterThan(20);
    expect(seen.recovered).toBeGreaterThan(2);
    expect(seen.wrongPassword).toBeGreaterThan(2);
    expect(seen.locked + seen.destroyed).toBeGreaterThan(0);
    expect(seen.keyMismatch).toBeGreaterThan(0); // answered without a guess, and replayed from the log like the rest
  });

  it('is deterministic: the same seed gives the same run', async () => {
    const a = await runSimulation({ seed: 1234, ops: 80 });
    const b = await runSimulation({ seed: 1234, ops: 80 });
    expect(b.stats).toEqual(a.stats);
  });

  // The broken variants are consensus faults; the escrow workload's smaller state machine shows them within a few seeds.
  it('the checker catches a deliberately broken node that commits on a minority', async () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 40 && caught === null; seed++) {
      const r = await runSimulation({ seed, ops: 200, members: 3, unsafeCommitQuorum: 1, workload: 'escrow' });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).toMatch(VIOLATION);
  });

  it('the checker catches a node whose rollback defence is switched off', async () => {
    let caught: string | null = null;
    // Rolled-back members matter only in some runs (103 is the first seed that shows it today; 56
    // was before the commit index stopped getting its own AppendEntries round, which moved the schedules).
    for (let seed = 1; seed <= 160 && caught === null; seed++) {
      const r = await runSimulation({ seed, ops: 300, members: 3, unsafeAcceptRollback: true, workload: 'escrow' });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).not.toBeNull();
  });
});
