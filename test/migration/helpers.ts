import { cp, mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import type { VaultClient } from '../../src/client/sdk/vault-client.js';
import { LockedError, WrongPasswordError } from '../../src/client/sdk/errors.js';

export const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'release-0.1');

export interface Account {
  password: string;
  key: string;
  limit: number;
  attemptsRemaining: number;
  destroyed: boolean;
}

export interface Manifest {
  ksf: { memory: number; iterations: number; parallelism: number };
  single: Record<string, Account>;
  fleet: Record<string, Account>;
}

export const manifest: Manifest = JSON.parse(readFileSync(join(FIXTURE, 'manifest.json'), 'utf8'));

const copies: string[] = [];
afterAll(async () => {
  await Promise.all(copies.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A private copy of one fixture directory (`single` or `fleet`), removed when the test file ends. */
export async function copyFixture(which: 'single' | 'fleet'): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), `bkv-migration-${which}-`));
  copies.push(parent);
  const dir = join(parent, which);
  await cp(join(FIXTURE, which), dir, { recursive: true });
  return dir;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * The account behaves as the manifest says: one wrong password reports exactly one attempt fewer
 * than the manifest's (when attempts are left), the right one recovers K; a destroyed account is locked.
 */
export async function checkAccount(client: () => VaultClient, a: Account): Promise<void> {
  if (a.destroyed) {
    await expect(client().recoverKey(a.password)).rejects.toBeInstanceOf(LockedError);
    return;
  }
  if (a.attemptsRemaining > 0) {
    const err = await client().recoverKey(`not-${a.password}`).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WrongPasswordError);
    expect((err as WrongPasswordError).attemptsRemaining).toBe(a.attemptsRemaining - 1);
  }
  expect(hex(await client().recoverKey(a.password))).toBe(a.key);
}
