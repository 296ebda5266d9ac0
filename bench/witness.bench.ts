/**
 * Witness log throughput: durable appends per second (group-committed, fsync'd) and inclusion-proof
 * verifications per second, each next to a reference measured in the same run:
 *  - appends: raw appends of the same record bytes with the same batching, write + fdatasync;
 *  - verifications: raw SHA-256 hashes of 65-byte inputs (the cost unit of a proof step).
 *
 *   npx tsx bench/witness.bench.ts [--appends 20000] [--concurrency 512] [--tree 100000]
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { WitnessLog } from '../src/witness/log.js';
import { makeDemoFleet } from '../src/witness/demo-support.js';
import { artifactDigest } from '../src/shared/fleet-formats/artifact.js';
import { encodeBase64, encodeHex } from '../src/shared/fleet-formats/encoding.js';
import { MerkleTree, leafHash, verifyInclusion } from '../src/shared/merkle/index.js';
import { installNativeSha256 } from '../src/node/native-sha256.js';
import * as nodeCrypto from 'node:crypto';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const APPENDS = arg('appends', 20000);
const CONCURRENCY = arg('concurrency', 512);
const TREE = arg('tree', 100000);

async function pool(total: number, conc: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < total) await op(next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

export async function main(): Promise<{ name: string; value: number; unit: string; reference: number; ratio: number }[]> {
  installNativeSha256(); // the Node path the witness and the audit CLI use
  const dir = await mkdtemp(join(tmpdir(), 'bkv-witness-bench-'));
  try {
    // Durable appends through the witness log: sign the statement, group-commit, Merkle append,
    // sign a checkpoint per batch. One artifact per namespace (epoch 1 each).
    const log = await WitnessLog.open(join(dir, 'w'));
    const fleet = makeDemoFleet('bench', 'f');
    const digests = Array.from({ length: APPENDS }, () => new Uint8Array(randomBytes(32)));
    // the artifact bytes are stored per record; reuse one artifact (digest uniqueness is per namespace)
    const art = fleet.bytes;
    const secs = await pool(APPENDS, CONCURRENCY, async (i) => {
      await log.logStatement(`ns-${i}`, 1, digests[i]!, art);
    });
    const appendRate = APPENDS / secs;
    await log.close();

    // Reference: the same record bytes, same batch sizes, plain write + fdatasync.
    const line = JSON.stringify({ t: 's', st: encodeBase64(new Uint8Array(200)), sig: encodeBase64(new Uint8Array(64)), art: encodeBase64(art) }) + '\n';
    const fh = await open(join(dir, 'raw.log'), 'a');
    const batches = Math.max(1, Math.round(APPENDS / CONCURRENCY));
    const chunk = line.repeat(Math.ceil(APPENDS / batches));
    const t0 = performance.now();
    for (let b = 0; b < batches; b++) {
      await fh.write(chunk);
      await fh.datasync();
    }
    const rawRate = (batches * Math.ceil(APPENDS / batches)) / ((performance.now() - t0) / 1000);
    await fh.close();

    // Inclusion-proof verification in a tree of TREE leaves.
    const tree = new MerkleTree();
    for (let i = 0; i < TREE; i++) tree.appendLeafHash(sha256(new Uint8Array([i & 255, (i >> 8) & 255, i >> 16])));
    const root = tree.root();
    const N = 2000;
    const cases = Array.from({ length: N }, (_, k) => {
      const idx = (k * 7919) % TREE;
      return { idx, leaf: tree.leafHash(idx), proof: tree.inclusionProof(idx) };
    });
    const steps = cases.reduce((a, c) => a + c.proof.length, 0) / N;
    let verified = 0;
    let t1 = performance.now();
    while (performance.now() - t1 < 1500) {
      for (const c of cases) verifyInclusion(c.idx, TREE, c.leaf, c.proof, root);
      verified += N;
    }
    const verifyRate = verified / ((performance.now() - t1) / 1000);
    // The reference: raw hashes/s of the same SHA-256 implementation (Node's native one here).
    const buf = new Uint8Array(65);
    const nativeHash = (nodeCrypto as { hash?: (a: string, d: Uint8Array, e: 'buffer') => Buffer }).hash;
    const rawHash = nativeHash ? (b: Uint8Array) => nativeHash('sha256', b, 'buffer') : (b: Uint8Array) => sha256(b);
    let hashes = 0;
    t1 = performance.now();
    while (performance.now() - t1 < 1000) {
      for (let i = 0; i < 1000; i++) rawHash(buf);
      hashes += 1000;
    }
    const hashRate = hashes / ((performance.now() - t1) / 1000);
    const hashBound = hashRate / steps; // verifications/s if only the hashing cost anything

    const rows = [
      { name: `durable appends/s (witness log, ${CONCURRENCY} concurrent)`, value: appendRate, unit: 'appends/s', reference: rawRate, ratio: appendRate / rawRate },
      { name: `inclusion verifications/s (tree ${TREE}, ${steps.toFixed(1)} hashes/proof)`, value: verifyRate, unit: 'verifs/s', reference: hashBound, ratio: verifyRate / hashBound },
    ];
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log('Witness log');
    console.log('| measure | ours | reference | ratio | target |');
    console.log('|---|---:|---:|---:|---:|');
    console.log(`| ${rows[0]!.name} | ${fmt(appendRate)} | ${fmt(rawRate)} (raw write+fdatasync, same batches) | ${rows[0]!.ratio.toFixed(2)} | ≥ 5,000 |`);
    console.log(`| ${rows[1]!.name} | ${fmt(verifyRate)} | ${fmt(hashBound)} (raw SHA-256 ${fmt(hashRate)}/s ÷ hashes per proof) | ${rows[1]!.ratio.toFixed(2)} | ≥ 20,000 |`);
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
