import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulator.js';
import { VaultWorkload } from '../../src/sim/vault-workload.js';

const VIOLATION = /committed entry at index \d+ changed|guess limit exceeded|not recoverable|two leaders|differs from the replay/;

describe('deterministic simulator', () => {
  it('finds no invariant violation over 30 seeds x 300 ops of the real vault state machine, every fault enabled', () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 30; seed++) {
      const r = runSimulation({ seed, ops: 300, members: seed % 3 === 0 ? 3 : 5 });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
    }
    expect(failures).toEqual([]);
  });

  it('finds no invariant violation with the escrow model workload', () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 6; seed++) {
      const r = runSimulation({ seed, ops: 300, members: seed % 2 === 0 ? 3 : 5, workload: 'escrow' });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
    }
    expect(failures).toEqual([]);
  });

  it('the vault workload exercises grants, recoveries, wrong passwords and lockouts', () => {
    const w = new VaultWorkload();
    // A seed whose run reaches every outcome (runs differ in how many recoveries complete).
    const r = runSimulation({ seed: 6, ops: 400, workload: w });
    expect(r.ok).toBe(true);
    const seen = w.summary();
    expect(seen.granted).toBeGreaterThan(20);
    expect(seen.recovered).toBeGreaterThan(2);
    expect(seen.wrongPassword).toBeGreaterThan(2);
    expect(seen.locked + seen.destroyed).toBeGreaterThan(0);
  });

  it('is deterministic: the same seed gives the same run', () => {
    const a = runSimulation({ seed: 1234, ops: 80 });
    const b = runSimulation({ seed: 1234, ops: 80 });
    expect(b.stats).toEqual(a.stats);
  });

  // The broken variants are consensus faults; the escrow workload's smaller state machine shows them within a few seeds.
  it('the checker catches a deliberately broken node that commits on a minority', () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 40 && caught === null; seed++) {
      const r = runSimulation({ seed, ops: 200, members: 3, unsafeCommitQuorum: 1, workload: 'escrow' });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).toMatch(VIOLATION);
  });

  it('the checker catches a node whose rollback defence is switched off', () => {
    let caught: string | null = null;
    // Rolled-back members matter only in some runs (56 is the first seed that shows it today).
    for (let seed = 1; seed <= 80 && caught === null; seed++) {
      const r = runSimulation({ seed, ops: 300, members: 3, unsafeAcceptRollback: true, workload: 'escrow' });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).not.toBeNull();
  });
});
