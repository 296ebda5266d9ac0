import { describe, expect, it, afterEach } from 'vitest';
import { movingPart } from '../../src/cli/commands/fleet.js';
import { fleetGroups, parseFleetConfig } from '../../src/host/fleet/config.js';
import { groupStoreUrl } from '../../src/host/fleet/group-replica.js';
import { PeerTransport } from '../../src/host/fleet/peer-transport.js';
import { freePorts } from '../../src/host/fleet/provision.js';
import { isBkvError } from '../../src/shared/errors.js';

const SLOTS = 2 ** 32;

describe('fleet.json replication groups', () => {
  const base = {
    format: 'bkv-fleet-config/v1', fleetId: 'f', clusterId: 'AAAAAAAAAAAAAAAAAAAAAA', quorum: 2,
    members: [1, 2, 3].map((id) => ({ id, site: 's', host: '127.0.0.1', raftPort: 1000 + id, apiPort: 2000 + id, identityKey: 'A'.repeat(43), signingKey: 'A'.repeat(43) })),
    gateway: { host: '127.0.0.1', port: 3000 }, policy: { defaultLimit: 10, maxLimit: 100 },
  };
  it('defaults to one group: the layout of a fleet without groups', () => {
    expect(fleetGroups(parseFleetConfig(JSON.stringify(base)))).toEqual({ genesis: 1, total: 1, multi: false });
    expect(fleetGroups(parseFleetConfig(JSON.stringify({ ...base, groups: 3, spareGroups: 1 })))).toEqual({ genesis: 3, total: 4, multi: true });
    expect(fleetGroups({ groups: 1, spareGroups: 1 })).toEqual({ genesis: 1, total: 2, multi: true });
  });
  it('refuses bad group counts with a typed error', () => {
    for (const bad of [{ groups: 0 }, { groups: 65 }, { groups: 1.5 }, { spareGroups: -1 }, { groups: 60, spareGroups: 5 }]) {
      let err: unknown;
      try {
        parseFleetConfig(JSON.stringify({ ...base, ...bad }));
      } catch (e) {
        err = e;
      }
      expect(isBkvError(err, 'USAGE')).toBe(true);
    }
  });
});

describe('per-group record store URLs', () => {
  it('keeps a fleet without groups on the member store, and gives each group its own file or schema', () => {
    expect(groupStoreUrl('sqlite:/d/member-1.sqlite', 2, false)).toBe('sqlite:/d/member-1.sqlite');
    expect(groupStoreUrl('sqlite:/d/member-1.sqlite', 2, true)).toBe('sqlite:/d/member-1-group-2.sqlite');
    expect(new URL(groupStoreUrl('postgres://u@h/db?schema=bkv_member_3', 1, true)).searchParams.get('schema')).toBe('bkv_member_3_g1');
    expect(new URL(groupStoreUrl('postgres://u@h/db', 0, true)).searchParams.get('schema')).toBe('bkv_member_g0');
  });
});

describe('the part of a range that moves', () => {
  it('moves a suffix to an empty group or the group that follows, a prefix to the group that precedes', () => {
    expect(movingPart({ start: 100, end: 200 }, { start: 0, end: 0 }, { fraction: 0.5 })).toEqual({ start: 150, end: 200 });
    expect(movingPart({ start: 100, end: 200 }, { start: 200, end: 300 }, { slots: 10 })).toEqual({ start: 190, end: 200 });
    expect(movingPart({ start: 100, end: 200 }, { start: 0, end: 100 }, { fraction: 0.25 })).toEqual({ start: 100, end: 125 });
    expect(movingPart({ start: 0, end: SLOTS }, { start: 0, end: 0 }, { all: true })).toEqual({ start: 0, end: SLOTS });
  });
  it('refuses a group that is not adjacent, and amounts outside the range', () => {
    expect(() => movingPart({ start: 100, end: 200 }, { start: 300, end: 400 }, {})).toThrow(/not adjacent/);
    expect(() => movingPart({ start: 100, end: 200 }, { start: 200, end: 300 }, { slots: 101 })).toThrow(/1 to 100/);
    expect(() => movingPart({ start: 100, end: 200 }, { start: 200, end: 300 }, { fraction: 0.001 })).toThrow(/1 to 100/);
    expect(() => movingPart({ start: 0, end: 0 }, { start: 200, end: 300 }, {})).toThrow(/owns no range/);
  });
});

describe('peer transport of a fleet of groups', () => {
  const open: PeerTransport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });
  it('carries each frame with its group byte to the receiver, which hands it to that group', async () => {
    const [pa, pb] = await freePorts(2);
    const got: Array<[number, number[]]> = [];
    const a = new PeerTransport(new Map([[2, { host: '127.0.0.1', port: pb! }]]), () => {}, true);
    const b = new PeerTransport(new Map([[1, { host: '127.0.0.1', port: pa! }]]), (bytes, g) => got.push([g, [...bytes]]), true);
    open.push(a, b);
    await a.listen({ host: '127.0.0.1', port: pa! });
    await b.listen({ host: '127.0.0.1', port: pb! });
    for (let i = 0; i < 50 && got.length < 3; i++) {
      if (i % 10 === 0) {
        got.length = 0;
        a.send(2, new Uint8Array([1, 2]), 0);
        a.send(2, new Uint8Array([3]), 3);
        a.send(2, new Uint8Array(0), 63);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(got).toEqual([[0, [1, 2]], [3, [3]], [63, []]]);
  });
});
