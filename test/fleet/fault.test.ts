import { describe, expect, it } from 'vitest';
import { runFaultTest } from '../../scripts/fault-test.js';

// Five real member processes (from dist: `npm test` builds first) and the gateway on loopback; load
// from a child process; members killed with SIGKILL and the leader frozen with SIGSTOP. A small
// default of `npm run fault-test`.
describe('fleet under process faults', () => {
  it('loses no acknowledged registration, never exceeds a guess limit, and serves again once a majority is up', async () => {
    const lines: string[] = [];
    const r = await runFaultTest({ rounds: 4, maxUsers: 40, seed: 7, log: (l) => lines.push(l) });
    const summary = JSON.stringify(r);
    expect(r.acknowledged, summary).toBeGreaterThan(10);
    expect(r.lost, `${summary}\n${lines.join('\n')}`).toBe(0);
    expect(r.excess, summary).toBe(0);
    expect(r.lockoutUsers, summary).toBeGreaterThan(0);
    expect(r.kills, summary).toBeGreaterThanOrEqual(4);
    expect(r.recoverySeconds.afterMajorityRestart, summary).toBeLessThan(15);
  }, 90_000);

  it('with 3 replication groups and ranges moving between them all along: nothing lost, no guess beyond the limit, no transfer left open', async () => {
    const lines: string[] = [];
    const r = await runFaultTest({ rounds: 4, maxUsers: 40, seed: 11, groups: 3, log: (l) => lines.push(l) });
    const summary = `${JSON.stringify(r)}\n${lines.join('\n')}`;
    expect(r.acknowledged, summary).toBeGreaterThan(10);
    expect(r.lost, summary).toBe(0);
    expect(r.excess, summary).toBe(0);
    expect(r.transfers.done, summary).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => l.includes('still open')), summary).toBe(false);
  }, 120_000);
});
