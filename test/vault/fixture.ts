import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import type { VaultTransport } from '../../src/client/sdk/transport.js';
import { openVaultMember, type VaultMember } from '../../src/host/vault-member.js';

/** Cheap Argon2id parameters so tests stay fast (production uses 64 MiB; see docs/vault.md). */
export const TEST_KSF = { memory: 256, iterations: 1, parallelism: 1 };

export interface Fixture {
  dir: string;
  member: VaultMember;
  /** Closes and reopens the member from its directory (a restart of the HSM and its host). */
  restart(): Promise<void>;
  client(account: string, transport?: (inner: VaultTransport) => VaultTransport, limit?: number): VaultClient;
  /** A transport straight into the core, as the gateway relays it. */
  direct(account: string): VaultTransport;
  close(): Promise<void>;
}

/** Attempts left on an account's record (undefined: no live record). Software backend inspection. */
export async function attemptsLeft(fx: Fixture, account: string): Promise<number | undefined> {
  const r = await fx.member.peek(account);
  return r?.status === 'live' ? r.attemptsRemaining : undefined;
}

export async function makeFixture(opts: { snapshotEvery?: number } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'bkv-vault-test-'));
  const fx: Fixture = {
    dir,
    member: await openVaultMember(dir, opts),
    async restart() {
      await fx.member.close();
      fx.member = await openVaultMember(dir, opts);
    },
    direct(account) {
      return (envelope) => fx.member.core.handle(account, envelope);
    },
    client(account, wrap = (t) => t, limit = 10) {
      return new VaultClient({
        account,
        fleet: async () => {
          const k = fx.member.core.publicKeys();
          return { opaqueServerPublicKey: k.opaqueServerPublicKey, encryptionPublicKey: k.encryptionPublicKey };
        },
        transport: wrap(fx.direct(account)),
        ksf: TEST_KSF,
        attemptLimit: limit,
      });
    },
    async close() {
      await fx.member.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fx;
}

export const randomKey = () => crypto.getRandomValues(new Uint8Array(32));
