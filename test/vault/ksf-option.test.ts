/**
 * `--ksf-memory KiB` (and BKV_KSF_MEMORY) change the Argon2id memory of a new registration and
 * nothing else: the record keeps the documented 3 passes and 4 lanes (docs/vault.md), not 1 lane.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ksfFromOptions } from '../../src/cli/vault-options.js';
import { DEFAULT_CLIENT_KSF, VaultClient } from '../../src/client/sdk/vault-client.js';
import { isBkvError } from '../../src/shared/errors.js';
import { makeFixture, randomKey, type Fixture } from './fixture.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
  delete process.env.BKV_KSF_MEMORY;
});

describe('--ksf-memory', () => {
  it('sets the memory only; passes and lanes stay the defaults', () => {
    expect(ksfFromOptions({})).toBeUndefined();
    expect(ksfFromOptions({ ksfMemory: '1024' })).toEqual({ memory: 1024, iterations: DEFAULT_CLIENT_KSF.iterations, parallelism: DEFAULT_CLIENT_KSF.parallelism });
    expect(ksfFromOptions({ ksfMemory: '1024' })).toEqual({ memory: 1024, iterations: 3, parallelism: 4 });
    process.env.BKV_KSF_MEMORY = '64';
    expect(ksfFromOptions({})).toEqual({ memory: 64, iterations: 3, parallelism: 4 });
    for (const bad of ['63', '4194305', '1.5', 'lots']) {
      expect(() => ksfFromOptions({ ksfMemory: bad })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });

  it('the record registered with it holds memory 1024, 3 passes and 4 lanes', async () => {
    fx = await makeFixture();
    const f = fx;
    const k = randomKey();
    const client = new VaultClient({
      account: 'ksf-user',
      fleet: async () => f.member.core.publicKeys(),
      transport: f.direct('ksf-user'),
      ksf: ksfFromOptions({ ksfMemory: '1024' })!,
    });
    await client.registerKey('a password', k);
    const record = await f.member.peek('ksf-user');
    expect(record?.status === 'live' && record.ksf).toEqual({ memory: 1024, iterations: 3, parallelism: 4 });
    expect(await client.recoverKey('a password')).toEqual(k);
    await expect(client.recoverKey('wrong')).rejects.toSatisfy((e) => isBkvError(e, 'WRONG_PASSWORD'));
  });
});
