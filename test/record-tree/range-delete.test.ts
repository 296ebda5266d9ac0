/**
 * Range deletion in the record tree (src/shared/record-tree/delete.ts): random trees, random
 * ranges; the result must be the tree a fresh RootBuilder makes of the remaining records, node for
 * node (the host's stored nodes) and root for root (the core's partial tree from proofs).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  RootBuilder,
  alignedKeyBlocks,
  childHash,
  compareKeys,
  deleteBlocks,
  encodeProof,
  lastKeyOf,
  partialTree,
  positionId,
  prove,
  verifyProof,
  type KeyBlock,
  type TreeChild,
  type TreeNode,
} from '../../src/shared/record-tree/index.js';
import { isBkvError } from '../../src/shared/errors.js';
import { hex, sha } from './reference.js';

interface Built {
  root: TreeChild;
  nodes: Map<string, TreeNode>;
}

function build(records: Array<{ key: Uint8Array; vh: Uint8Array }>): Built {
  const nodes = new Map<string, TreeNode>();
  const b = new RootBuilder((d, k, n) => nodes.set(positionId(d, k), n));
  for (const r of [...records].sort((x, y) => compareKeys(x.key, y.key))) b.add(r.key, r.vh);
  return { root: b.finishChild(), nodes };
}

const reader = (t: Built) => (d: number, k: Uint8Array) => t.nodes.get(positionId(d, k));

function inBlocks(key: Uint8Array, blocks: KeyBlock[]): boolean {
  return blocks.some((b) => compareKeys(key, b.key) >= 0 && compareKeys(key, lastKeyOf(b)) <= 0);
}

/** The position ids of a node map that lie at or below a block. */
function insideBlock(id: string, blocks: KeyBlock[]): boolean {
  const [d, bits] = id.split(':') as [string, string];
  const depth = parseInt(d, 16);
  const key = new Uint8Array(32);
  for (let i = 0; i < bits.length / 2; i++) key[i] = parseInt(bits.slice(2 * i, 2 * i + 2), 16);
  return blocks.some((b) => depth >= b.depth && compareKeys(key, b.key) >= 0 && compareKeys(key, lastKeyOf(b)) <= 0);
}

/** The core's way: the blocks' first-key proofs, plus a proof for each position the routine asks for. */
function coreDelete(before: Built, blocks: KeyBlock[]): { rootHash: Uint8Array; extra: number } {
  const rootHash = hexToRoot(before.root);
  const proofs = blocks.map((b) => ({ key: b.key, proof: encodeProof(prove(before.root, reader(before), b.key)) }));
  for (let extra = 0; ; extra++) {
    const p = partialTree(rootHash, proofs);
    try {
      return { rootHash: deleteBlocks(p.root, p.read, blocks).rootHash, extra };
    } catch (e) {
      if (!isBkvError(e, 'VERIFICATION_FAILED') || extra > 600) throw e;
      const want = Uint8Array.from(Buffer.from(String((e as { details: Record<string, unknown> }).details.key), 'hex'));
      proofs.push({ key: want, proof: encodeProof(prove(before.root, reader(before), want)) });
    }
  }
}

const hexToRoot = (c: TreeChild): Uint8Array => childHash(c);

function check(records: Array<{ key: Uint8Array; vh: Uint8Array }>, blocks: KeyBlock[]): { extra: number } {
  const before = build(records);
  const remaining = records.filter((r) => !inBlocks(r.key, blocks));
  const after = build(remaining);
  const expected = hexToRoot(after.root);

  // Host: over every stored node.
  const res = deleteBlocks(before.root, reader(before), blocks);
  expect(hex(res.rootHash)).toBe(hex(expected));
  expect(res.root).toEqual(after.root);
  const nodes = new Map(before.nodes);
  for (const id of [...nodes.keys()]) if (insideBlock(id, blocks)) nodes.delete(id);
  for (const r of res.removed) {
    expect(nodes.has(positionId(r.depth, r.key)), 'a removed node existed').toBe(true);
    nodes.delete(positionId(r.depth, r.key));
  }
  for (const c of res.changed) {
    expect(nodes.has(positionId(c.depth, c.key)), 'a changed node existed').toBe(true);
    nodes.set(positionId(c.depth, c.key), c.node);
  }
  // Node for node what a fresh build stores.
  expect([...nodes.keys()].sort()).toEqual([...after.nodes.keys()].sort());
  for (const [id, n] of after.nodes) expect(nodes.get(id), id).toEqual(n);

  // Core: from proofs alone.
  const core = coreDelete(before, blocks);
  expect(hex(core.rootHash)).toBe(hex(expected));
  // Every remaining record and every deleted one proves right against the new root.
  for (const r of records.slice(0, 20)) {
    const got = verifyProof(expected, r.key, encodeProof(prove(after.root, reader(after), r.key)));
    expect(got === null ? null : hex(got)).toBe(inBlocks(r.key, blocks) ? null : hex(r.vh));
  }
  return { extra: core.extra };
}

const k = (...b: number[]): Uint8Array => {
  const x = new Uint8Array(32);
  x.set(b);
  return x;
};
const vh = (i: number): Uint8Array => sha(new TextEncoder().encode(`v${i}`));

describe('record tree: range deletion', () => {
  it('aligned key blocks cover exactly [from, to), maximal and in order', () => {
    expect(alignedKeyBlocks(k(), null)).toEqual([{ key: k(), depth: 0 }]);
    expect(alignedKeyBlocks(k(0x80), null)).toEqual([{ key: k(0x80), depth: 1 }]);
    expect(alignedKeyBlocks(k(0x40), k(0xc0))).toEqual([{ key: k(0x40), depth: 2 }, { key: k(0x80), depth: 2 }]);
    expect(alignedKeyBlocks(k(0x10), k(0x10))).toEqual([]);
    expect(alignedKeyBlocks(k(0x20), k(0x10))).toEqual([]);
    const ones = new Uint8Array(32).fill(0xff);
    expect(alignedKeyBlocks(ones, null)).toEqual([{ key: ones, depth: 256 }]);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 })), (a, b) => {
        const blocks = alignedKeyBlocks(a, b);
        expect(blocks.length).toBeLessThanOrEqual(512);
        if (b !== null && compareKeys(a, b) >= 0) {
          expect(blocks).toEqual([]);
          return;
        }
        expect(hex(blocks[0]!.key)).toBe(hex(a));
        for (let i = 1; i < blocks.length; i++) {
          // Adjacent: the block starts right after the previous one's last key (+1 carries through the ones).
          const next = BigInt('0x' + hex(lastKeyOf(blocks[i - 1]!))) + 1n;
          expect(next.toString(16).padStart(64, '0')).toBe(hex(blocks[i]!.key));
          // Maximal: a block and the next are not the two halves of one aligned block.
          const p = blocks[i - 1]!;
          expect(p.depth === blocks[i]!.depth && p.depth > 0 && lastKeyOf({ key: p.key, depth: p.depth - 1 }).every((x, j) => x === lastKeyOf(blocks[i]!)[j]) && (p.key[(p.depth - 1) >> 3]! & (0x80 >> ((p.depth - 1) & 7))) === 0).toBe(false);
        }
        const last = lastKeyOf(blocks[blocks.length - 1]!);
        if (b === null) expect(hex(last)).toBe(hex(new Uint8Array(32).fill(0xff)));
        else expect(compareKeys(last, b)).toBeLessThan(0);
      }),
      { numRuns: 150 },
    );
  });

  it('known cases: leaves move up, single-child chains collapse, the whole tree empties', () => {
    const recs = [k(0x00), k(0x01), k(0x40), k(0x41), k(0x80), k(0xff, 1)].map((key, i) => ({ key, vh: vh(i) }));
    // The left quarter: 00 and 01 go; the rest keeps its shape.
    check(recs, alignedKeyBlocks(k(0x00), k(0x40)));
    // All but one record: the last leaf moves to the root.
    check(recs, alignedKeyBlocks(k(0x00), k(0xff)));
    // Everything.
    check(recs, alignedKeyBlocks(k(0x00), null));
    // A block inside a leaf's subtree that does not hold it, and one that does.
    check([{ key: k(0x40), vh: vh(1) }, { key: k(0x80), vh: vh(2) }], alignedKeyBlocks(k(0x41), k(0x42)));
    check([{ key: k(0x40), vh: vh(1) }, { key: k(0x80), vh: vh(2) }], alignedKeyBlocks(k(0x40), k(0x41)));
    // Empty tree, one-record tree.
    check([], alignedKeyBlocks(k(0x40), null));
    check([{ key: k(0x40), vh: vh(1) }], alignedKeyBlocks(k(0x40), null));
    check([{ key: k(0x40), vh: vh(1) }], alignedKeyBlocks(k(0x41), null));
  });

  it('random trees, random ranges: the same nodes and root as a fresh build of the remaining records', () => {
    // Clustered keys (long shared prefixes, single-child chains) and ranges with bounds near them.
    const byte = fc.constantFrom(0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff);
    const key = fc.oneof(
      fc.array(byte, { minLength: 32, maxLength: 32 }).map((a) => Uint8Array.from(a)),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
    );
    let extraMax = 0;
    fc.assert(
      fc.property(fc.uniqueArray(key, { maxLength: 40, selector: hex }), fc.array(fc.tuple(key, fc.option(key)), { minLength: 1, maxLength: 2 }), (keys, ranges) => {
        const records = keys.map((key, i) => ({ key, vh: vh(i) }));
        // One range, or two disjoint ones (a prefix and a suffix of something, say).
        let blocks: KeyBlock[] = [];
        const sorted = ranges
          .map(([a, b]) => (b !== null && compareKeys(b, a) < 0 ? ([b, a] as const) : ([a, b] as const)))
          .sort((x, y) => compareKeys(x[0], y[0]));
        let prevEnd: Uint8Array | null | undefined;
        for (const [a, b] of sorted) {
          if (prevEnd === null) break; // the previous range ran to the end
          const from = prevEnd !== undefined && compareKeys(a, prevEnd) < 0 ? prevEnd : a;
          blocks = blocks.concat(alignedKeyBlocks(from, b));
          prevEnd = b;
        }
        const { extra } = check(records, blocks);
        extraMax = Math.max(extraMax, extra);
      }),
      { numRuns: 250 },
    );
    // The core needs a few extra proofs at most (where a leaf moves up), not one per record.
    expect(extraMax).toBeLessThanOrEqual(8);
  });

  it('slot ranges over many random records: every block, at most a handful of extra proofs', () => {
    const records = Array.from({ length: 3000 }, (_, i) => ({ key: sha(new TextEncoder().encode(`r${i}`)), vh: vh(i) }));
    for (const [a, b] of [[0x12, 0x80], [0x00, 0x55], [0x55, null], [0x01, 0x02], [0x7f, 0x81]] as const) {
      const { extra } = check(records, alignedKeyBlocks(k(a, 0x33), b === null ? null : k(b, 0x07)));
      expect(extra).toBeLessThanOrEqual(4);
    }
  });

  it('a reader without the nodes it needs is refused, never guessed', () => {
    const recs = [k(0x00), k(0x01), k(0x40), k(0x41), k(0x80)].map((key, i) => ({ key, vh: vh(i) }));
    const t = build(recs);
    let err: unknown;
    try {
      deleteBlocks(t.root, () => undefined, alignedKeyBlocks(k(0x00), k(0x40)));
    } catch (e) {
      err = e;
    }
    expect(isBkvError(err, 'VERIFICATION_FAILED')).toBe(true);
    expect(() => deleteBlocks(t.root, reader(t), [{ key: k(0x40), depth: 1 }])).toThrow(/bits set/);
    expect(() => deleteBlocks(t.root, reader(t), [{ key: k(0x80), depth: 1 }, { key: k(0x40), depth: 2 }])).toThrow(/increasing/);
  });
});
