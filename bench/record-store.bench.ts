/**
 * Record store: bulk load with `replace`, random proven reads of one key, applies of one write.
 *   tsx bench/record-store.bench.ts [--n 100000] [--reads 10000] [--applies 2000] [--value 256]
 *                                    [--engines sqlite,memory] [--postgres postgres://…?schema=bench]
 * Keys are random-looking but generated in increasing order (the first 4 bytes spread evenly, the
 * rest a hash), so the load streams in bounded memory at any N. Each apply writes one record:
 * alternately an update of an existing key and a new key. SQLite runs with synchronous=FULL, so
 * an apply costs an fsync of the WAL.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRecordStore, type RecordStore, type StoredRecord } from '../src/host/record-store/index.js';
import { verifyRecord } from '../src/shared/record-tree/index.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string, dflt: number): number => {
  const v = arg(name);
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
};

const N = num('n', 100_000);
const READS = num('reads', 10_000);
const APPLIES = num('applies', 2_000);
const VALUE = num('value', 256);
const engines = (arg('engines') ?? 'sqlite,memory').split(',').filter(Boolean);
const pgUrl = arg('postgres');
if (pgUrl && !engines.includes('postgres')) engines.push('postgres');

function keyOf(i: number): Uint8Array {
  const k = new Uint8Array(createHash('sha256').update(`bench key ${i}`).digest());
  const p = Math.floor((i * 2 ** 32) / N);
  k[0] = p >>> 24;
  k[1] = (p >>> 16) & 0xff;
  k[2] = (p >>> 8) & 0xff;
  k[3] = p & 0xff;
  return k;
}
function valueOf(i: number, version: number): Uint8Array {
  const v = new Uint8Array(VALUE);
  const h = createHash('sha256').update(`value ${i} ${version}`).digest();
  for (let o = 0; o < VALUE; o += 32) v.set(h.subarray(0, Math.min(32, VALUE - o)), o);
  return v;
}
async function* synthetic(pageSize: number): AsyncIterable<StoredRecord[]> {
  for (let i = 0; i < N; i += pageSize) {
    const page: StoredRecord[] = [];
    for (let j = i; j < Math.min(N, i + pageSize); j++) page.push({ key: keyOf(j), value: valueOf(j, 0) });
    yield page;
  }
}

/** The root of the synthetic set, computed the way a peer would have (an honest export). */
async function expectedRoot(): Promise<Uint8Array> {
  const mem = await openRecordStore('memory:');
  // Any root is accepted here only to learn it: a replace with the wrong root throws and reports it.
  try {
    await mem.replace({ index: 1, root: new Uint8Array(32) }, synthetic(1000));
  } catch (e) {
    const got = (e as { details?: { got?: string } }).details?.got;
    if (got) return Uint8Array.from(Buffer.from(got, 'hex'));
    throw e;
  } finally {
    await mem.close();
  }
  return new Uint8Array(32); // N = 0 cannot happen (N ≥ 1)
}

// A cheap deterministic sequence for the random picks.
let seed = 0x9e3779b9;
const rnd = (n: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

interface Row {
  engine: string;
  loadRate: number;
  readRate: number;
  verifyRate: number;
  applyRate: number;
  bytesPerRecord: number;
  bytesNote: string;
}

function heapBytes(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function run(engine: string, root: Uint8Array): Promise<Row> {
  let url: string;
  let dir: string | null = null;
  if (engine === 'sqlite') {
    dir = mkdtempSync(join(tmpdir(), 'bkv-bench-rs-'));
    url = `sqlite:${join(dir, 'records.db')}`;
  } else if (engine === 'memory') {
    url = 'memory:';
  } else if (engine === 'postgres') {
    if (!pgUrl) throw new Error('--postgres URL needed');
    url = pgUrl;
  } else {
    throw new Error(`unknown engine ${engine}`);
  }
  const heap0 = heapBytes();
  const store: RecordStore = await openRecordStore(url);
  try {
    let t = performance.now();
    const meta = await store.replace({ index: 1, root }, synthetic(1000));
    const loadRate = N / ((performance.now() - t) / 1000);

    let bytesPerRecord = NaN;
    let bytesNote = '';
    if (engine === 'sqlite') {
      const path = url.slice('sqlite:'.length);
      const size = (p: string) => (existsSync(p) ? statSync(p).size : 0);
      bytesPerRecord = (size(path) + size(`${path}-wal`)) / meta.count;
      bytesNote = 'file (+WAL) after load';
    } else if (engine === 'memory') {
      bytesPerRecord = (heapBytes() - heap0) / meta.count;
      bytesNote = (globalThis as { gc?: unknown }).gc ? 'heap growth' : 'heap growth (no --expose-gc: rough)';
    } else {
      bytesNote = 'see pg_total_relation_size';
    }

    // Reads of one random existing key, each with its proof; the core's check timed apart.
    const proofs: { key: Uint8Array; value: Uint8Array | null; proof: Uint8Array }[] = [];
    t = performance.now();
    for (let i = 0; i < READS; i++) {
      const r = await store.read([keyOf(rnd(N))]);
      if (i < 2000) proofs.push(r.reads[0]!);
    }
    const readRate = READS / ((performance.now() - t) / 1000);
    t = performance.now();
    for (const p of proofs) verifyRecord(meta.root, p.key, p.value, p.proof);
    const verifyRate = proofs.length / ((performance.now() - t) / 1000);

    t = performance.now();
    let index = meta.index;
    for (let i = 0; i < APPLIES; i++) {
      const w = i % 2 === 0 ? { key: keyOf(rnd(N)), value: valueOf(i, 1) } : { key: new Uint8Array(createHash('sha256').update(`new ${i}`).digest()), value: valueOf(i, 2) };
      await store.apply(++index, [w]);
    }
    const applyRate = APPLIES / ((performance.now() - t) / 1000);
    return { engine, loadRate, readRate, verifyRate, applyRate, bytesPerRecord, bytesNote };
  } finally {
    await store.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

const root = await expectedRoot();
const rows: Row[] = [];
for (const e of engines) rows.push(await run(e, root));

const f = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
console.log(`record store: N = ${N.toLocaleString('en-US')} records of ${VALUE} bytes, ${READS} reads, ${APPLIES} applies (one write each)`);
console.log('| engine | replace (records/s) | read 1 key + proof (ops/s) | core verify (ops/s) | apply 1 write (ops/s) | bytes per record |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.engine} | ${f(r.loadRate)} | ${f(r.readRate)} | ${f(r.verifyRate)} | ${f(r.applyRate)} | ${f(r.bytesPerRecord)} (${r.bytesNote}) |`);
}
