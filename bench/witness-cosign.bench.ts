/**
 * Witness cosigning throughput: C2SP tlog-witness `add-checkpoint` requests per second on one
 * witness (HTTP on loopback, keep-alive), each with a consistency proof over a log of a million
 * entries, next to raw Ed25519 signatures per second (node:crypto) measured in the same run.
 *
 * Every request is the whole server path: parse, verify the log's Ed25519 signature, verify the
 * consistency proof from the size the witness cosigned last, persist the new view atomically
 * (temp file, fsync, rename, fsync of the directory), sign the cosignature. Requests for one log
 * are sequential (each starts from the size the previous one reached), so the load is several
 * logs at once.
 *
 *   npx tsx bench/witness-cosign.bench.ts [--entries 1000000] [--logs 32] [--requests 4000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import { sign as nodeSign } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { MerkleTree } from '../src/shared/merkle/index.js';
import { installNativeSha256 } from '../src/node/native-sha256.js';
import { signCheckpoint } from '../src/client/fleet/checkpoint.js';
import { formatVerifierKey } from '../src/shared/fleet-formats/note.js';
import { encodeBase64 } from '../src/shared/fleet-formats/encoding.js';
import { fastSigner, nodePrivateKey } from '../src/witness/keys.js';
import { startWitness } from '../src/witness/server.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ENTRIES = arg('entries', 1_000_000);
const LOGS = arg('logs', 32);
const REQUESTS = arg('requests', 4000);

function post(agent: Agent, port: number, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/add-checkpoint', method: 'POST', agent, headers: { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function main(): Promise<{ addPerSec: number; signPerSec: number }> {
  installNativeSha256();
  const t0 = performance.now();
  const tree = new MerkleTree();
  const leaf = new Uint8Array(4);
  for (let i = 0; i < ENTRIES; i++) {
    leaf[0] = i & 255;
    leaf[1] = (i >> 8) & 255;
    leaf[2] = (i >> 16) & 255;
    leaf[3] = i >>> 24;
    tree.appendLeafHash(sha256(leaf));
  }
  const buildSecs = (performance.now() - t0) / 1000;

  // LOGS logs (their own origins and keys) over the same million-entry tree; each log's requests
  // walk its size from ~half the tree to the full tree in random steps.
  const perLog = Math.ceil(REQUESTS / LOGS);
  const signers = Array.from({ length: LOGS }, (_, i) => fastSigner(`bench.example/log${i}`, sha256(new Uint8Array([i, 1, 2, 3]))));
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const plans = signers.map((s) => {
    const sizes = [Math.floor(ENTRIES / 2 + rnd() * 1000)];
    const span = ENTRIES - sizes[0]!;
    for (let k = 1; k <= perLog; k++) sizes.push(Math.min(ENTRIES, sizes[0]! + Math.floor((span * k) / perLog) - Math.floor(rnd() * 50)));
    for (let k = 1; k < sizes.length; k++) if (sizes[k]! <= sizes[k - 1]!) sizes[k] = sizes[k - 1]! + 1;
    const note = (n: number) => signCheckpoint({ origin: s.name, size: n, rootHash: tree.root(n), extensions: [] }, s);
    const first = `old 0\n\n${note(sizes[0]!)}`;
    const bodies: string[] = [];
    let proofLines = 0;
    for (let k = 1; k < sizes.length; k++) {
      const proof = tree.consistencyProof(sizes[k - 1]!, sizes[k]!);
      proofLines += proof.length;
      bodies.push(`old ${sizes[k - 1]}\n${proof.map((p) => encodeBase64(p) + '\n').join('')}\n${note(sizes[k]!)}`);
    }
    return { first, bodies, proofLines };
  });
  const total = plans.reduce((a, p) => a + p.bodies.length, 0);
  const avgProof = plans.reduce((a, p) => a + p.proofLines, 0) / total;

  const dir = await mkdtemp(join(tmpdir(), 'bkv-cosign-bench-'));
  const w = await startWitness(join(dir, 'w'), { addCosignLogs: signers.map((s) => formatVerifierKey(s.name, s.publicKey)) });
  const port = Number(new URL(w.url).port);
  const agent = new Agent({ keepAlive: true, maxSockets: LOGS });
  try {
    // first checkpoint of every log (old 0), not timed
    for (const p of plans) {
      const r = await post(agent, port, p.first);
      if (r.status !== 200) throw new Error(`first add-checkpoint: HTTP ${r.status} ${r.text}`);
    }
    const lat: number[] = [];
    const t1 = performance.now();
    await Promise.all(
      plans.map(async (p) => {
        for (const b of p.bodies) {
          const s = performance.now();
          const r = await post(agent, port, b);
          lat.push(performance.now() - s);
          if (r.status !== 200) throw new Error(`add-checkpoint: HTTP ${r.status} ${r.text}`);
        }
      }),
    );
    const secs = (performance.now() - t1) / 1000;
    const addPerSec = total / secs;
    lat.sort((a, b) => a - b);
    const pct = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!;

    // Raw Ed25519 signatures per second, node:crypto (what the witness signs with), same message size.
    const seedBytes = sha256(new Uint8Array([9]));
    const key = nodePrivateKey(seedBytes, fastSigner('k', seedBytes).publicKey);
    const msg = Buffer.from(`cosignature/v1\ntime 1700000000\nbench.example/log0\n${ENTRIES}\n${encodeBase64(tree.root())}\n`);
    let signs = 0;
    const t2 = performance.now();
    while (performance.now() - t2 < 1500) {
      for (let i = 0; i < 200; i++) nodeSign(null, msg, key);
      signs += 200;
    }
    const signPerSec = signs / ((performance.now() - t2) / 1000);

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`Witness cosigning (tree of ${fmt(ENTRIES)} entries built in ${buildSecs.toFixed(1)} s; ${LOGS} logs, ${fmt(total)} timed requests; load average ${loadavg()[0]!.toFixed(1)})`);
    console.log('| measure | ours | reference (same run) | ratio | target |');
    console.log('|---|---:|---:|---:|---:|');
    console.log(
      `| add-checkpoint requests/s (HTTP keep-alive, ${LOGS} logs concurrently, ${avgProof.toFixed(1)} proof hashes each, durable state per request) | ${fmt(addPerSec)} | ${fmt(signPerSec)} raw Ed25519 signatures/s (node:crypto) | ${(addPerSec / signPerSec).toFixed(3)} | ≥ 1,000 ${addPerSec >= 1000 ? '✓' : '✗'} |`,
    );
    console.log(`| add-checkpoint latency p50 / p99 ms | ${pct(0.5).toFixed(2)} / ${pct(0.99).toFixed(2)} | | | |`);
    console.log(`witness-cosign add-checkpoint-per-s=${addPerSec.toFixed(0)} ed25519-sign-per-s=${signPerSec.toFixed(0)}`);
    return { addPerSec, signPerSec };
  } finally {
    agent.destroy();
    await w.close();
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
