/**
 * A member that installs a snapshot whose batch its store already holds: the writer tells the core
 * at once (a restore forgets what the store holds), so the member can lead and read without
 * waiting for a further batch that may never come.
 */
import { describe, expect, it } from 'vitest';
import { InstantLog, settle } from './harness.js';
import { register } from '../groups/harness.js';

describe('store writer after a snapshot install', () => {
  it("a store already at the snapshot's batch is reported in step at once", async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const b = log.addMember();
    const batcher = log.batcher(a);
    for (const u of ['r1', 'r2', 'r3']) await batcher.execute(register(u));
    await settle(log);
    // The store holds the snapshot's batch: in step right after the install.
    a.state.restore(a.state.snapshot());
    expect(a.state.storeHealth().state).toBe('behind');
    a.records.onOutput({ type: 'restored' } as never);
    expect(a.state.storeHealth()).toEqual({ state: 'ok' });
    // And the member goes on: the next batch is written and checked as usual.
    await batcher.execute(register('r4'));
    await settle(log);
    expect(a.state.storeHealth()).toEqual({ state: 'ok' });
    expect((await a.store.meta()).root).toEqual(a.state.root);
    expect((await b.store.meta()).root).toEqual(b.state.root);
  });
});
