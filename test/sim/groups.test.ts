import { describe, expect, it } from 'vitest';
import { runGroupSimulation } from '../../src/sim/groups.js';

describe('deterministic simulator with replication groups', () => {
  it('finds no violation with transfers interleaved with every fault kind (3 groups over 5 members, 2 over 3)', async () => {
    const failures: string[] = [];
    let done = 0;
    let aborted = 0;
    let wrongGroup = 0;
    for (let seed = 1; seed <= 4; seed++) {
      const r = await runGroupSimulation({ seed, ops: 120, groups: seed === 4 ? 2 : 3, members: seed === 4 ? 3 : 5 });
      if (!r.ok) failures.push(`${r.reproduce}: ${r.violations.join('; ')}`);
      done += r.stats.transfersDone;
      aborted += r.stats.transfersAborted;
      wrongGroup += r.stats.wrongGroup;
    }
    expect(failures).toEqual([]);
    expect(done).toBeGreaterThan(0);
    expect(done + aborted).toBeGreaterThan(2);
    expect(wrongGroup).toBeGreaterThan(0);
  });

  it('is deterministic: the same seed gives the same run', async () => {
    const a = await runGroupSimulation({ seed: 77, ops: 60, groups: 3 });
    const b = await runGroupSimulation({ seed: 77, ops: 60, groups: 3 });
    expect(b.stats).toEqual(a.stats);
    expect(a.reproduce).toBe('npm run sim -- --groups 3 --seed 77 --ops 60');
  });

  it('the checker catches groups that keep serving a range they are transferring out', async () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 20 && caught === null; seed++) {
      const r = await runGroupSimulation({ seed, ops: 150, groups: 3, unsafeServeMoving: true });
      if (!r.ok) caught = r.violations[0] ?? 'violation';
    }
    expect(caught).toMatch(/both serve|no progress|guess limit|differs from the replay/);
  });
});
