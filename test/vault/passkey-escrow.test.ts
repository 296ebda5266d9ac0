/**
 * Passkey escrow in the vault core: K wrapped under a passkey's PRF-derived key is registered only
 * with proof of possession, and released only for a fresh, unexpired, unreplayed assertion by the
 * registered credential over a challenge the core issued to this account.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PASSKEY_PRF_INPUT, unwrapWithPasskey, wrapWithPasskey } from '../../src/client/keys/passkey-wrap.js';
import { PasskeyVaultClient } from '../../src/client/sdk/passkey-client.js';
import { DEFAULT_POLICY } from '../../src/trusted/core/vault-core.js';
import { nodeCoreEnv } from '../../src/host/fleet/native-crypto.js';
import { openVaultMember, type VaultMember } from '../../src/host/vault-member.js';
import { decodeEntry, encodeEntry } from '../../src/trusted/core/entries.js';
import { assertWith, newCredential, type SoftCredential } from './soft-authenticator.js';

const ORIGIN = 'http://localhost:7480';
let dir: string;
let member: VaultMember;
let clock = Date.now();
const env = { ...nodeCoreEnv, now: () => clock };
const policy = { ...DEFAULT_POLICY, passkeys: { rpId: 'localhost', origins: [ORIGIN] } };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-passkey-'));
  clock = Date.now();
  member = await openVaultMember(dir, { env, policy });
});
afterEach(async () => {
  await member.close();
  await rm(dir, { recursive: true, force: true });
});

function client(account: string): PasskeyVaultClient {
  return new PasskeyVaultClient({
    account,
    fleet: async () => {
      const k = member.core.publicKeys();
      return { opaqueServerPublicKey: k.opaqueServerPublicKey, encryptionPublicKey: k.encryptionPublicKey };
    },
    transport: (e) => member.core.handle(account, e),
  });
}

async function register(account: string, cred: SoftCredential, k: Uint8Array): Promise<void> {
  const c = client(account);
  const wrappedKey = wrapWithPasskey(cred.prf(PASSKEY_PRF_INPUT), account, cred.credentialId, k);
  await c.register({ credentialId: cred.credentialId, cosePublicKey: cred.cosePublicKey, wrappedKey, assertion: assertWith(cred, await c.challenge()) });
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
}

describe('passkey escrow in the vault core', () => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    it(`${alg}: registers with proof of possession and releases K for a verified assertion`, async () => {
      const cred = newCredential(alg);
      const k = crypto.getRandomValues(new Uint8Array(32));
      await register('alice', cred, k);
      const c = client('alice');
      const wrapped = await c.recover({ credentialId: cred.credentialId, assertion: assertWith(cred, await c.challenge()) });
      expect(unwrapWithPasskey(cred.prf(PASSKEY_PRF_INPUT), 'alice', cred.credentialId, wrapped)).toEqual(k);
      // What the vault stores is useless without the passkey's PRF: another secret does not unwrap it.
      const stored = (await member.peekPasskeys('alice'))!.credentials[0]!;
      expect(() => unwrapWithPasskey(new Uint8Array(32).fill(1), 'alice', cred.credentialId, stored.wrappedKey)).toThrow(/does not unwrap/);
    });
  }

  it('refuses a replayed assertion: each challenge releases K once', async () => {
    const cred = newCredential();
    await register('alice', cred, crypto.getRandomValues(new Uint8Array(32)));
    const c = client('alice');
    const assertion = assertWith(cred, await c.challenge());
    await c.recover({ credentialId: cred.credentialId, assertion });
    // The attacker captured the assertion (a log, a proxy) and sends it again.
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion }))).toMatch(/^CONFLICT: .*replayed/);
    // Also after a restart of the member (the use is in the replicated log).
    await member.close();
    member = await openVaultMember(dir, { env, policy });
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion }))).toMatch(/^CONFLICT: .*replayed/);
  });

  it('refuses an expired challenge', async () => {
    const cred = newCredential();
    await register('alice', cred, crypto.getRandomValues(new Uint8Array(32)));
    const c = client('alice');
    const assertion = assertWith(cred, await c.challenge());
    clock += 5 * 60 * 1000 + 1;
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion }))).toMatch(/^VERIFICATION_FAILED: .*expired/);
  });

  it("refuses a challenge issued to another account, or one the core never issued", async () => {
    const cred = newCredential();
    await register('alice', cred, crypto.getRandomValues(new Uint8Array(32)));
    // Mallory gets a challenge for her own account and has alice's authenticator sign it.
    const mallory = client('mallory');
    const hers = await mallory.challenge();
    expect(await failure(client('alice').recover({ credentialId: cred.credentialId, assertion: assertWith(cred, hers) }))).toMatch(
      /^VERIFICATION_FAILED: .*not one this vault issued for this account/,
    );
    // A challenge made up by the attacker.
    const forged = crypto.getRandomValues(new Uint8Array(52));
    expect(await failure(client('alice').recover({ credentialId: cred.credentialId, assertion: assertWith(cred, forged) }))).toMatch(/^VERIFICATION_FAILED/);
  });

  it('refuses another credential, a wrong origin and a wrong relying party', async () => {
    const cred = newCredential();
    await register('alice', cred, crypto.getRandomValues(new Uint8Array(32)));
    const c = client('alice');
    const other = newCredential();
    // The attacker's own passkey, claiming alice's credential id: its signature does not verify.
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion: assertWith(other, await c.challenge()) }))).toMatch(
      /^VERIFICATION_FAILED: .*signature does not verify/,
    );
    // Under its own id: nothing is registered for it.
    expect(await failure(c.recover({ credentialId: other.credentialId, assertion: assertWith(other, await c.challenge()) }))).toMatch(/^NOT_REGISTERED/);
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion: assertWith(cred, await c.challenge(), { origin: 'https://phish.example' }) }))).toMatch(
      /^VERIFICATION_FAILED: .*origin/,
    );
    expect(await failure(c.recover({ credentialId: cred.credentialId, assertion: assertWith(cred, await c.challenge(), { rpId: 'phish.example' }) }))).toMatch(
      /^VERIFICATION_FAILED: .*rpIdHash/,
    );
  });

  it('registers nothing without proof of possession of the key', async () => {
    const victim = newCredential();
    const attacker = newCredential();
    const c = client('alice');
    // The attacker registers someone's public key but can only sign with their own key.
    const r = failure(
      c.register({
        credentialId: victim.credentialId,
        cosePublicKey: victim.cosePublicKey,
        wrappedKey: new Uint8Array(60),
        assertion: assertWith(attacker, await c.challenge()),
      }),
    );
    expect(await r).toMatch(/^VERIFICATION_FAILED: .*signature/);
    expect(await member.peekPasskeys('alice')).toBeUndefined();
  });

  it('a vault whose policy names no relying party refuses passkeys', async () => {
    await member.close();
    member = await openVaultMember(dir, { env, policy: DEFAULT_POLICY });
    expect(await failure(client('alice').challenge())).toMatch(/^USAGE: vault: this vault accepts no passkeys/);
  });

  it('passkey entries round-trip through the log codec, and survive a restart from snapshot', async () => {
    const e = { type: 'passkey-use' as const, ts: 5, user: 'u', credentialId: new Uint8Array([1, 2]), challengeId: new Uint8Array(16).fill(7) };
    expect(decodeEntry(encodeEntry(e))).toEqual(e);
    await member.close();
    member = await openVaultMember(dir, { env, policy, snapshotEvery: 1 });
    const cred = newCredential('EdDSA');
    const k = crypto.getRandomValues(new Uint8Array(32));
    await register('bob', cred, k);
    const snap = member.state.snapshot();
    member.state.restore(snap);
    expect(member.state.snapshot()).toEqual(snap);
    await member.close();
    member = await openVaultMember(dir, { env, policy, snapshotEvery: 1 });
    const c = client('bob');
    const wrapped = await c.recover({ credentialId: cred.credentialId, assertion: assertWith(cred, await c.challenge()) });
    expect(unwrapWithPasskey(cred.prf(PASSKEY_PRF_INPUT), 'bob', cred.credentialId, wrapped)).toEqual(k);
  });
});
