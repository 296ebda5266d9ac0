import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  RootBuilder,
  TreeUpdater,
  applyUpdates,
  decodeProof,
  encodeProof,
  positionId,
  prove,
  verifyProof,
  verifyRecord,
  valueHash,
  type Proof,
  type TreeChild,
  type TreeNode,
  EMPTY_CHILD,
  useRecordTreeSha256,
} from '../../src/shared/record-tree/index.js';
import { isBkvError } from '../../src/shared/errors.js';
import { Z, bit, hex, refHash, refLeaf, refNode, refProve, sha, toSet, type Entry } from './reference.js';

const key = (first: number[], fill = 0): Uint8Array => {
  const k = new Uint8Array(32).fill(fill);
  first.forEach((b, i) => (k[i] = b));
  return k;
};
const vhOf = (s: string): Uint8Array => sha(new TextEncoder().encode(s));

function expectCode(f: () => unknown, ...codes: string[]): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a throw').toBeDefined();
  expect(isBkvError(err), String(err)).toBe(true);
  if (codes.length) expect(codes).toContain((err as { code: string }).code);
}

function build(entries: Entry[]): Uint8Array {
  const b = new RootBuilder();
  for (const e of toSet(entries)) b.add(e.key, e.vh);
  return b.finish();
}

/** A host-style tree: internal nodes in a map, updated through TreeUpdater. */
class MapTree {
  root: TreeChild = EMPTY_CHILD;
  nodes = new Map<string, TreeNode>();
  read = (d: number, k: Uint8Array): TreeNode | undefined => this.nodes.get(positionId(d, k));
  apply(entries: Entry[]): Uint8Array {
    const u = new TreeUpdater(this.root, this.read);
    for (const e of entries) u.set(e.key, e.vh);
    const r = u.finish();
    for (const c of r.changed) this.nodes.set(positionId(c.depth, c.key), c.node);
    this.root = r.root;
    return r.rootHash;
  }
  prove(k: Uint8Array): Proof {
    return prove(this.root, this.read, k);
  }
}

describe('record tree: known answers derived by hand', () => {
  const k0 = key([0x00]); // 0000…
  const k1 = key([0x20]); // 0010…  shares 2 bits with k0
  const k2 = key([0x40]); // 01…
  const k3 = key([0x80]); // 1…
  const v = (i: number) => vhOf(`value ${i}`);

  it('the empty tree is 32 zero bytes and proves absence with 4 bytes', () => {
    expect(build([])).toEqual(Z);
    const p = new MapTree().prove(k0);
    expect(hex(encodeProof(p))).toBe('01000000');
    expect(verifyProof(Z, k0, encodeProof(p))).toBeNull();
  });

  it('one key: the root is its leaf hash, SHA-256(00 ‖ key ‖ SHA-256(value))', () => {
    const value = new TextEncoder().encode('hello');
    const vh = valueHash(value);
    expect(vh).toEqual(sha(value));
    const root = build([{ key: k3, vh }]);
    expect(root).toEqual(sha(Uint8Array.of(0), k3, vh));
    const t = new MapTree();
    t.apply([{ key: k3, vh }]);
    const enc = encodeProof(t.prove(k3));
    expect(hex(enc)).toBe('0101' + hex(k3) + hex(vh) + '0000');
    expect(verifyProof(root, k3, enc)).toEqual(vh);
    verifyRecord(root, k3, value, enc);
    // Absent key: the same leaf at depth 0 proves absence.
    expect(verifyProof(root, k0, enc)).toBeNull();
  });

  it('two keys that differ in bit 0: one internal node over the two leaves', () => {
    const root = build([
      { key: k0, vh: v(0) },
      { key: k3, vh: v(3) },
    ]);
    expect(root).toEqual(sha(Uint8Array.of(1), refLeaf(k0, v(0)), refLeaf(k3, v(3))));
  });

  it('two keys sharing 2 bits: two single-child nodes above the split', () => {
    // k0 = 00 0…, k1 = 00 1…: split at depth 2; depths 1 and 0 have the pair on the left, empty right.
    const split = refNode(refLeaf(k0, v(0)), refLeaf(k1, v(1)));
    const expected = refNode(refNode(split, Z), Z);
    const entries = [
      { key: k0, vh: v(0) },
      { key: k1, vh: v(1) },
    ];
    expect(build(entries)).toEqual(expected);
    const t = new MapTree();
    expect(t.apply(entries)).toEqual(expected);
    const enc = encodeProof(t.prove(k1));
    // version, leaf, k1, vh1, depth 3, bitmap 001….: only the sibling at depth 2 (leaf k0) is non-empty.
    expect(hex(enc)).toBe('0101' + hex(k1) + hex(v(1)) + '0003' + '20' + hex(refLeaf(k0, v(0))));
    expect(verifyProof(expected, k1, enc)).toEqual(v(1));
    // Key 01…: left at depth 0 (sibling: the empty right half), then right at depth 1, which is
    // empty (sibling: the split node). Bitmap 01: only the depth-1 sibling is listed.
    const absent = encodeProof(t.prove(k2));
    expect(hex(absent)).toBe('0100' + '0002' + '40' + hex(split));
    expect(verifyProof(expected, k2, absent)).toBeNull();
  });

  it('three keys 00…, 01…, 1…: the hand-written root and proofs', () => {
    const L0 = refLeaf(k0, v(0));
    const L2 = refLeaf(k2, v(2));
    const L3 = refLeaf(k3, v(3));
    const expected = refNode(refNode(L0, L2), L3);
    const entries = [
      { key: k3, vh: v(3) },
      { key: k0, vh: v(0) },
      { key: k2, vh: v(2) },
    ];
    expect(build(entries)).toEqual(expected);
    const t = new MapTree();
    expect(t.apply(entries)).toEqual(expected);
    expect(hex(encodeProof(t.prove(k2)))).toBe('0101' + hex(k2) + hex(v(2)) + '0002' + 'c0' + hex(L3) + hex(L0));
    // 11… is absent: its path ends at depth 1 in the leaf of k3 (non-inclusion).
    const k11 = key([0xc0]);
    const p = encodeProof(t.prove(k11));
    expect(hex(p)).toBe('0101' + hex(k3) + hex(v(3)) + '0001' + '80' + hex(refNode(L0, L2)));
    expect(verifyProof(expected, k11, p)).toBeNull();
    // applyUpdates from the 2-key tree {00, 1} adding 01 needs the proof of 01 (ending in leaf 00).
    const two = new MapTree();
    const r2 = two.apply([entries[0]!, entries[1]!]);
    const pr = encodeProof(two.prove(k2));
    expect(applyUpdates(r2, [{ key: k2, proof: pr }], [{ key: k2, valueHash: v(2) }])).toEqual(expected);
  });

  it('pinned root of a 3-key tree (regression)', () => {
    const es = [
      { key: key([0x00]), vh: vhOf('a') },
      { key: key([0x40]), vh: vhOf('b') },
      { key: key([0x80]), vh: vhOf('c') },
    ];
    expect(hex(build(es))).toBe('d1162d24ebea756ff888413f0701f8946df11d6fb6d4dafa5160b6e0cd6f4bf7');
    expect(hex(refHash(toSet(es)))).toBe('d1162d24ebea756ff888413f0701f8946df11d6fb6d4dafa5160b6e0cd6f4bf7');
  });

  it('two keys that differ only in their last bit sit at depth 255 and prove at depth 256', () => {
    const a = key([], 0x00);
    const b = key([], 0x00);
    b[31] = 1;
    const entries = [
      { key: a, vh: v(0) },
      { key: b, vh: v(1) },
    ];
    const root = build(entries);
    expect(root).toEqual(refHash(toSet(entries)));
    const t = new MapTree();
    expect(t.apply(entries)).toEqual(root);
    const p = t.prove(b);
    expect(p.siblings.length).toBe(256);
    const enc = encodeProof(p);
    expect(enc.length).toBe(2 + 64 + 2 + 32 + 32);
    expect(verifyProof(root, b, enc)).toEqual(v(1));
  });
});

// Keys from a few byte values so that long shared prefixes, chains and deep splits are common.
const clusteredKey = fc.array(fc.constantFrom(0x00, 0x01, 0x80, 0xff), { minLength: 32, maxLength: 32 }).map((a) => Uint8Array.from(a));
const randomKey = fc.uint8Array({ minLength: 32, maxLength: 32 });
const anyKey = fc.oneof(clusteredKey, randomKey);
const entry = fc.record({ key: anyKey, vh: fc.uint8Array({ minLength: 32, maxLength: 32 }) });
const entries = (max: number) => fc.array(entry, { maxLength: max });

describe('record tree: properties against the naive reference', () => {
  it('RootBuilder equals the rebuilt tree', () => {
    fc.assert(
      fc.property(entries(60), (es) => {
        expect(hex(build(es))).toBe(hex(refHash(toSet(es))));
      }),
      { numRuns: 300 },
    );
  });

  it('RootBuilder reports every internal node, and they prove every key', () => {
    fc.assert(
      fc.property(entries(40), (es) => {
        const set = toSet(es);
        const nodes = new Map<string, TreeNode>();
        const b = new RootBuilder((d, k, n) => nodes.set(positionId(d, k), n));
        for (const e of set) b.add(e.key, e.vh);
        const top = b.finishChild();
        const root = refHash(set);
        const read = (d: number, k: Uint8Array) => nodes.get(positionId(d, k));
        for (const e of set) expect(verifyProof(root, e.key, encodeProof(prove(top, read, e.key)))).toEqual(e.vh);
      }),
      { numRuns: 150 },
    );
  });

  it('applyUpdates with proofs from the reference equals the rebuilt tree', () => {
    fc.assert(
      fc.property(entries(40), entries(12), fc.array(fc.nat(), { maxLength: 6 }), (initial, fresh, repeats) => {
        const before = toSet(initial);
        const root = refHash(before);
        // Updates: new keys, existing keys, and the same key twice.
        const updates: Entry[] = [...fresh];
        for (const r of repeats) if (before.length) updates.push({ ...before[r % before.length]!, vh: sha(Uint8Array.of(r & 0xff)) });
        if (fresh.length) updates.push({ key: fresh[0]!.key, vh: sha(Uint8Array.of(7)) });
        const proofs = toSet(updates).map((e) => ({ key: e.key, proof: encodeProof(refProve(before, e.key)) }));
        const got = applyUpdates(
          root,
          proofs,
          updates.map((e) => ({ key: e.key, valueHash: e.vh })),
        );
        expect(hex(got)).toBe(hex(refHash(toSet([...before, ...updates]))));
      }),
      { numRuns: 300 },
    );
  });

  it('a host-style tree updated batch by batch equals the reference, and its proofs are the reference proofs', () => {
    fc.assert(
      fc.property(fc.array(entries(15), { maxLength: 5 }), fc.array(anyKey, { maxLength: 5 }), (batches, probes) => {
        const t = new MapTree();
        let all: Entry[] = [];
        for (const batch of batches) {
          all = [...all, ...batch];
          expect(hex(t.apply(batch))).toBe(hex(refHash(toSet(all))));
        }
        const set = toSet(all);
        const root = refHash(set);
        for (const k of [...set.map((e) => e.key), ...probes]) {
          const p = t.prove(k);
          expect(hex(encodeProof(p))).toBe(hex(encodeProof(refProve(set, k))));
          const expected = set.find((e) => hex(e.key) === hex(k))?.vh ?? null;
          expect(verifyProof(root, k, encodeProof(p))).toEqual(expected);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('proof bytes decode to what was encoded', () => {
    fc.assert(
      fc.property(entries(30), anyKey, (es, k) => {
        const p = refProve(toSet(es), k);
        const enc = encodeProof(p);
        const dec = decodeProof(enc);
        expect(encodeProof(dec)).toEqual(enc);
        expect(dec.siblings.length).toBe(p.siblings.length);
      }),
      { numRuns: 200 },
    );
  });
});

describe('record tree: adversarial proofs are refused', () => {
  const set = toSet(
    Array.from({ length: 40 }, (_, i) => ({ key: sha(Uint8Array.of(i)), vh: sha(Uint8Array.of(i, 1)) })),
  );
  const root = refHash(set);
  const present = set[7]!;
  const other = set[8]!;
  const absent = sha(Uint8Array.of(200));
  const good = refProve(set, present.key);

  it('the honest proofs verify', () => {
    expect(verifyProof(root, present.key, encodeProof(good))).toEqual(present.vh);
    expect(verifyProof(root, absent, encodeProof(refProve(set, absent)))).toBeNull();
  });

  it('a proof for another key', () => {
    expectCode(() => verifyProof(root, present.key, encodeProof(refProve(set, other.key))), 'VERIFICATION_FAILED');
  });

  it('a flipped bit in any sibling', () => {
    const enc = encodeProof(good);
    const start = enc.length - good.siblings.filter((s) => s.some((b) => b)).length * 32;
    for (let i = start; i < enc.length; i += 7) {
      const bad = enc.slice();
      bad[i]! ^= 0x04;
      expectCode(() => verifyProof(root, present.key, bad), 'VERIFICATION_FAILED', 'MALFORMED');
    }
  });

  it('a swapped terminal: other value hash, other leaf, or empty', () => {
    const t = good.terminal as { kind: 'leaf'; key: Uint8Array; valueHash: Uint8Array };
    const variants: Proof[] = [
      { ...good, terminal: { ...t, valueHash: other.vh } },
      { ...good, terminal: { kind: 'leaf', key: other.key, valueHash: other.vh } },
      { ...good, terminal: { kind: 'empty' } },
    ];
    for (const p of variants) expectCode(() => verifyProof(root, present.key, encodeProof(p)), 'VERIFICATION_FAILED');
  });

  it('every truncation, and trailing bytes', () => {
    const enc = encodeProof(good);
    for (let n = 0; n < enc.length; n++) expectCode(() => verifyProof(root, present.key, enc.subarray(0, n)), 'MALFORMED');
    expectCode(() => verifyProof(root, present.key, Uint8Array.from([...enc, 0])), 'MALFORMED');
  });

  it('non-inclusion forged for a present key', () => {
    // The honest non-inclusion proof of an absent key, an empty terminal in place of the leaf,
    // and proofs cut short at every depth ending in nothing or in another record's leaf.
    const forgeries: Proof[] = [refProve(set, absent), { ...good, terminal: { kind: 'empty' } }];
    for (let d = 0; d < good.siblings.length; d++) {
      forgeries.push({ terminal: { kind: 'empty' }, siblings: good.siblings.slice(0, d) });
      forgeries.push({ terminal: { kind: 'leaf', key: other.key, valueHash: other.vh }, siblings: good.siblings.slice(0, d) });
    }
    for (const p of forgeries) {
      let result: unknown = 'threw';
      try {
        result = verifyProof(root, present.key, encodeProof(p));
      } catch (e) {
        expect(isBkvError(e, 'VERIFICATION_FAILED')).toBe(true);
      }
      expect(result).toBe('threw');
    }
  });

  it('a present leaf claimed as the terminal of a longer path (compaction) is refused', () => {
    const p: Proof = { terminal: good.terminal, siblings: [...good.siblings, Z] };
    expectCode(() => verifyProof(root, present.key, encodeProof(p)), 'VERIFICATION_FAILED');
  });

  it('a wrong value for a correct proof', () => {
    expectCode(() => verifyRecord(root, present.key, Uint8Array.of(1, 2, 3), encodeProof(good)), 'VERIFICATION_FAILED');
    expectCode(() => verifyRecord(root, present.key, null, encodeProof(good)), 'VERIFICATION_FAILED');
    expectCode(() => verifyRecord(root, absent, Uint8Array.of(1), encodeProof(refProve(set, absent))), 'VERIFICATION_FAILED');
  });

  it('non-canonical encodings: unknown version or terminal, depth > 256, stray bitmap bits, an empty hash listed', () => {
    const enc = encodeProof(good);
    const v2 = enc.slice();
    v2[0] = 2;
    expectCode(() => decodeProof(v2), 'MALFORMED');
    const t2 = enc.slice();
    t2[1] = 2;
    expectCode(() => decodeProof(t2), 'MALFORMED');
    expectCode(() => decodeProof(Uint8Array.from([1, 0, 0x01, 0x01, ...new Uint8Array(33)])), 'MALFORMED'); // depth 257
    // depth 3 with bitmap bit 4 set
    expectCode(() => decodeProof(Uint8Array.from([1, 0, 0, 3, 0x10])), 'MALFORMED');
    // depth 1, bit set, zero hash listed
    expectCode(() => decodeProof(Uint8Array.from([1, 0, 0, 1, 0x80, ...new Uint8Array(32)])), 'MALFORMED');
  });

  it('applyUpdates refuses a key without proof, a proof against another root, and a bad proof', () => {
    const vh = sha(Uint8Array.of(9));
    expectCode(() => applyUpdates(root, [], [{ key: absent, valueHash: vh }]), 'USAGE');
    expectCode(
      () => applyUpdates(root, [{ key: present.key, proof: encodeProof(good) }], [{ key: absent, valueHash: vh }]),
      'USAGE',
    );
    const otherRoot = refHash(set.slice(1));
    expectCode(
      () => applyUpdates(otherRoot, [{ key: present.key, proof: encodeProof(good) }], [{ key: present.key, valueHash: vh }]),
      'VERIFICATION_FAILED',
    );
    expectCode(
      () => applyUpdates(root, [{ key: present.key, proof: encodeProof(refProve(set, other.key)) }], [{ key: present.key, valueHash: vh }]),
      'VERIFICATION_FAILED',
    );
    // Empty tree: even the first insert needs its (empty) proof.
    expectCode(() => applyUpdates(Z, [], [{ key: absent, valueHash: vh }]), 'USAGE');
    expect(applyUpdates(Z, [{ key: absent, proof: Uint8Array.of(1, 0, 0, 0) }], [{ key: absent, valueHash: vh }])).toEqual(refLeaf(absent, vh));
  });

  it('RootBuilder refuses keys out of order or repeated', () => {
    const b = new RootBuilder();
    b.add(set[1]!.key, set[1]!.vh);
    expectCode(() => b.add(set[1]!.key, set[1]!.vh), 'USAGE');
    expectCode(() => b.add(set[0]!.key, set[0]!.vh), 'USAGE');
  });

  it('a SHA-256 implementation that gives wrong results is refused', () => {
    expectCode(() => useRecordTreeSha256(() => new Uint8Array(32)), 'INTERNAL');
    expect(build([{ key: key([1]), vh: vhOf('x') }])).toEqual(refLeaf(key([1]), vhOf('x')));
  });

  it('bit order is MSB first', () => {
    expect(bit(key([0x80]), 0)).toBe(1);
    expect(bit(key([0x01]), 7)).toBe(1);
  });
});
