import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVaultServer } from '../../src/host/vault-server.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bkv-vault-store-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('bkv vault start --store', () => {
  it('keeps the records where --store says, and by default in records.sqlite inside the directory', async () => {
    const elsewhere = join(root, 'stores', 'vault.sqlite');
    await mkdir(join(root, 'stores'));
    const a = await startVaultServer({ dir: join(root, 'a'), store: `sqlite:${elsewhere}`, logger: false });
    try {
      expect(a.storeUrl).toBe(`sqlite:${elsewhere}`);
      expect(existsSync(elsewhere)).toBe(true);
      expect(existsSync(join(root, 'a', 'records.sqlite'))).toBe(false);
    } finally {
      await a.close();
    }
    const b = await startVaultServer({ dir: join(root, 'b'), logger: false });
    try {
      expect(b.storeUrl).toBe(`sqlite:${join(root, 'b', 'records.sqlite')}`);
      expect(existsSync(join(root, 'b', 'records.sqlite'))).toBe(true);
    } finally {
      await b.close();
    }
  });
});
