import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulator.js';

describe('deterministic simulator', () => {
  it('finds no invariant violation over 30 seeds x 300 ops with every fault enabled', () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 30; seed++) {
      const r = runSimulation({ seed, ops: 300, members: seed % 3 === 0 ? 3 : 5 });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
    }
    expect(failures).toEqual([]);
  });

  it('is deterministic: the same seed gives the same run', () => {
    const a = runSimulation({ seed: 1234, ops: 80 });
    const b = runSimulation({ seed: 1234, ops: 80 });
    expect(b.stats).toEqual(a.stats);
  });

  it('the checker catches a deliberately broken node that commits on a minority', () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 40 && caught === null; seed++) {
      const r = runSimulation({ seed, ops: 200, members: 3, unsafeCommitQuorum: 1 });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).toMatch(/committed entry at index \d+ changed|guess limit exceeded|not recoverable|two leaders/);
  });

  it('the checker catches a node whose rollback defence is switched off', () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 40 && caught === null; seed++) {
      const r = runSimulation({ seed, ops: 300, members: 3, unsafeAcceptRollback: true });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).not.toBeNull();
  });
});
