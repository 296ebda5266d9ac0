/**
 * Host-side helpers for giving a member a state built elsewhere (benchmark preloads, bulk loads):
 * the single-member vault's consensus identity and storage key, and the installation of a sealed
 * vault-state snapshot naming a record-tree root, as the state a member reaches after committing
 * one batch that created those records (log index 1, term 1).
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { identityFromSeed } from '../trusted/consensus/auth.js';
import { sealHardState, sealSnapshot, snapshotDigest } from '../trusted/consensus/sealed-state.js';
import type { MemberId } from '../trusted/consensus/types.js';
import { encodeSnapshot } from '../trusted/records/record-state.js';
import { MemberStorage } from './fleet/member-storage.js';
import { nativeSealCrypto } from './fleet/native-crypto.js';

const te = new TextEncoder();

/** A single-member vault's consensus identity (member 1), cluster id and state storage key, from its identity seed. */
export function singleMemberKeys(seed: Uint8Array) {
  const identity = identityFromSeed(1, seed);
  const clusterId = sha256(identity.publicKey).slice(0, 16);
  const storageKey = hkdf(sha256, seed, clusterId, te.encode('bkv-member-storage-v1 1'), 32);
  return { identity, clusterId, storageKey };
}

/**
 * Installs, in the state directory of a member that is not running, a sealed vault-state snapshot
 * at index 1, term 1 whose record tree has `root` and `count` records (through
 * `MemberStorage.install`: the same persist path and counter as a running member). The member's
 * record store must hold exactly those records at index 1 (`RecordStore.replace({index: 1, root})`).
 */
export async function installRecordsSnapshot(stateDir: string, member: MemberId, storageKey: Uint8Array, tree: { root: Uint8Array; count: number }): Promise<void> {
  const data = encodeSnapshot({ index: 1, root: tree.root, count: tree.count, importOpen: false }, 1);
  const rnd = () => crypto.getRandomValues(new Uint8Array(12));
  await MemberStorage.install(stateDir, (stamp) => {
    const snapshot = sealSnapshot(storageKey, member, rnd(), { index: 1, term: 1, data }, nativeSealCrypto);
    const hardState = sealHardState(storageKey, member, stamp, rnd(), {
      term: 1, votedFor: null, learner: false, lastIndex: 1, lastTerm: 1, snapshot: { index: 1, term: 1, digest: snapshotDigest(snapshot, nativeSealCrypto) },
    }, nativeSealCrypto);
    return { snapshot, hardState };
  });
}
