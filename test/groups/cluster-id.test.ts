import { describe, expect, it } from 'vitest';
import { PeerAuth, identityFromSeed } from '../../src/trusted/consensus/auth.js';
import { MemoryCounter } from '../../src/trusted/consensus/counter.js';
import { MsgType, encodeBody } from '../../src/trusted/consensus/messages.js';
import { groupClusterId } from '../../src/trusted/groups/cluster-id.js';
import { createVaultMember } from '../../src/trusted/member.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import { EMPTY_IMAGE, bootStateOf } from '../../src/sim/disk.js';
import { GROUP_KEYS } from './harness.js';

const seed = (n: number) => new Uint8Array(32).fill(n);
const alice = identityFromSeed(0, seed(1));
const bob = identityFromSeed(1, seed(2));
const members = new Map([[0, alice.publicKey], [1, bob.publicKey], [2, identityFromSeed(2, seed(3)).publicKey]]);
const fleetClusterId = new Uint8Array(16).fill(9);

/** Member 0's node of one group (or of a fleet without groups), built by the trusted assembly. */
function node(group: number | null) {
  const stateMachine = group === null ? new RecordState() : new RecordState({ id: group, groups: 3, keys: GROUP_KEYS });
  const parts = createVaultMember({
    stateMachine,
    node: { identity: alice, members, clusterId: fleetClusterId, storageKey: seed(4), counter: new MemoryCounter(), rng: () => 7, boot: bootStateOf(EMPTY_IMAGE), now: 0, config: {} },
    env: { now: () => 0, setTimer: () => ({ cancel() {} }) as never, send: () => {}, persist: (_r, done) => done() },
    driver: { tickMs: 10, requestTimeoutMs: 1000, onOutput: () => {} },
  });
  return parts;
}

/** A genuine pre-vote from member 1 to member 0, MAC'd under `clusterId`. */
const preVote = (clusterId: Uint8Array) =>
  new PeerAuth(bob, members, clusterId).seal(0, encodeBody({ t: MsgType.Vote, term: 1, lastIndex: 0, lastTerm: 0, pre: true, transfer: false }));

describe('consensus keys per replication group', () => {
  it('derives a distinct 32-byte cluster id per group, fixed by the fleet id and the group id', () => {
    const ids = [0, 1, 2, 63].map((g) => Buffer.from(groupClusterId(fleetClusterId, g)).toString('hex'));
    expect(new Set(ids).size).toBe(4);
    expect(ids[0]).toHaveLength(64);
    expect(Buffer.from(groupClusterId(fleetClusterId, 1)).toString('hex')).toBe(ids[1]);
    expect(Buffer.from(groupClusterId(new Uint8Array(16).fill(8), 1)).toString('hex')).not.toBe(ids[1]);
    expect(() => groupClusterId(fleetClusterId, 256)).toThrow(RangeError);
  });

  it("a group's node refuses another group's genuine messages, and the fleet-wide id opens none of them", () => {
    const g0 = node(0);
    const g1 = node(1);
    const plain = node(null);
    const fromGroup0 = preVote(groupClusterId(fleetClusterId, 0));

    g0.driver.receive(fromGroup0); // its own group's message: authenticated and handled
    expect(g0.node.stats.droppedAuth).toBe(0);

    g1.driver.receive(fromGroup0); // the host carries group 0's message into group 1's node
    expect(g1.node.stats.droppedAuth).toBe(1);
    plain.driver.receive(fromGroup0);
    expect(plain.node.stats.droppedAuth).toBe(1);

    g0.driver.receive(preVote(fleetClusterId)); // keyed with the fleet's id, as a node without groups would
    expect(g0.node.stats.droppedAuth).toBe(1);
    plain.driver.receive(preVote(fleetClusterId)); // a fleet without groups keeps the fleet's id as it is
    expect(plain.node.stats.droppedAuth).toBe(1);
  });
});
