/**
 * Records at scale: a single-member vault holding N users in its record store, small against
 * large, on SQLite and on PostgreSQL. Per size: the bulk load (`scripts/load-records.ts`, in its
 * own process), then the vault (`startVaultServer`) in its own process (`bench/lib/record-scale-member.ts`):
 * its RSS and heap, and apart from them what the core itself holds (`RecordState`: its remembered
 * batch points × their measured size); recoveries of the 100 users whose passwords the loader
 * knows, through the gateway over loopback, at a fixed concurrency for a fixed time; p50/p99/max
 * latency; bytes on disk per user (SQLite: the database file and its WAL; PostgreSQL: the store's
 * tables with their indexes); compaction stalls (the log is compacted every --snapshot-every
 * entries: any recovery in flight while the log compacted that took more than 10× the run's p99).
 *
 * All vaults are loaded first, then started together, and measured in alternating rounds (small,
 * large, PostgreSQL, small, …), so that the other work on the machine meets all of them alike.
 * Argon2id in the load generator is 8 KiB, 1 pass (the client's cost, not the vault's); each
 * recovery's first half (KE1 and its HPKE sealing) is prepared before its clock starts.
 *
 *   npx tsx bench/record-scale.bench.ts [--sizes 10000,1000000] [--large 10000000] [--pg 100000]
 *       [--seconds 30] [--rounds 3] [--concurrency 8] [--snapshot-every 100] [--data DIR]
 *       [--cpu-prof DIR]
 * --large adds one more SQLite size (10 million for the design's figure); --pg sets the PostgreSQL
 * size (1 million for the design's figure; the default keeps `npm run bench` short), 0 skips it. --data keeps
 * the loaded SQLite vaults in DIR (reused by the next run when their load.json matches); without it
 * they go to a temporary directory that is removed at the end.
 */
import * as opaque from '@serenity-kit/opaque';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { LIGHT_KSF, percentile } from './lib/load.js';
import { httpTransport } from '../src/client/sdk/transport.js';
import { VaultClient } from '../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../src/cli/vault-options.js';
import { nativeChannelPrimitives } from '../src/host/fleet/native-crypto.js';
import { knownAccount, knownPassword, knownSecret } from '../scripts/load-records.js';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string, dflt: number) => {
  const n = Number(arg(name) ?? dflt);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number`);
  return n;
};
const SIZES = (arg('sizes') ?? '10000,1000000').split(',').map(Number);
if (arg('large')) SIZES.push(num('large', 0));
const PG = num('pg', 100_000);
const SECONDS = num('seconds', 30);
const ROUNDS = Math.max(1, num('rounds', 3));
const CONCURRENCY = num('concurrency', 8);
const SNAPSHOT_EVERY = num('snapshot-every', 100);
const REAL = 100;
/** --cpu-prof DIR: each vault writes V8 CPU profiles (one per thread) to DIR/<case>/ when it stops. */
const CPU_PROF = arg('cpu-prof');

interface Case {
  name: string;
  users: number;
  dir: string;
  store: string;
  load?: { seconds: number; recordsPerSecond: number; reused: boolean };
  child?: ChildProcess;
  url?: string;
  fleetKeysPath?: string;
  lat: number[];
  ops: Array<[number, number]>; // wall-clock start, end (ms)
  busy: number; // seconds of recovery load
  cpu: number; // CPU seconds (user + system) of the vault process during the rounds
  errors: number;
}

const load1 = () => loadavg()[0]!.toFixed(1);

async function loadCase(c: Case, pgUrl?: string): Promise<void> {
  const marker = join(c.dir, 'load.json');
  if (existsSync(marker) && !pgUrl) {
    const m = JSON.parse(readFileSync(marker, 'utf8')) as { users: number; store: string; seconds: number; recordsPerSecond: number };
    if (m.users === c.users && m.store === c.store) {
      c.load = { seconds: m.seconds, recordsPerSecond: m.recordsPerSecond, reused: true };
      console.log(`${c.name}: reusing the load in ${c.dir} (${m.seconds.toFixed(0)} s when it was made)`);
      return;
    }
  }
  console.log(`${c.name}: loading ${c.users.toLocaleString('en')} users (load average ${load1()}) …`);
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/load-records.ts'), '--dir', c.dir, '--users', String(c.users), '--store', c.store, '--real', String(REAL), '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`load-records failed for ${c.name} (exit ${code})`);
  const m = JSON.parse(out.trim().split('\n').at(-1)!) as { seconds: number; recordsPerSecond: number };
  c.load = { seconds: m.seconds, recordsPerSecond: m.recordsPerSecond, reused: false };
  console.log(`${c.name}: loaded in ${m.seconds.toFixed(0)} s (${m.recordsPerSecond.toFixed(0)} records/s, load average ${load1()})`);
}

async function startMember(c: Case): Promise<void> {
  const child = fork(join(here, 'lib/record-scale-member.ts'), ['--dir', c.dir, '--store', c.store, '--snapshot-every', String(SNAPSHOT_EVERY)], { cwd: root, execArgv: ['--import', 'tsx', ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(CPU_PROF), c.name.replace(/[^A-Za-z0-9]+/g, '-'))}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  c.child = child;
  const info = await new Promise<{ url: string; fleetKeysPath: string; count: number }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { url: string; fleetKeysPath: string; count: number }));
    child.once('exit', (code) => reject(new Error(`${c.name}: the vault exited with ${code}`)));
  });
  if (info.count !== c.users) throw new Error(`${c.name}: the vault holds ${info.count} records, expected ${c.users}`);
  c.url = info.url;
  c.fleetKeysPath = info.fleetKeysPath;
}

async function stats(c: Case) {
  c.child!.send('stats');
  return new Promise<{ rss: number; heapUsed: number; core: { history: number; bytes: number }; perPoint: number; compactions: number[]; snapshotIndex: number; commitIndex: number }>((resolve) => c.child!.once('message', (m) => resolve(m as never)));
}

async function clientsFor(c: Case) {
  const fleet = await readFleetKeys(c.fleetKeysPath!);
  const clients: VaultClient[] = [];
  for (let i = 0; i < REAL; i++) {
    const account = knownAccount(i);
    const res = await fetch(`${c.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
    const { token } = (await res.json()) as { token: string };
    clients.push(new VaultClient({ account, fleet, ksf: LIGHT_KSF, channelPrimitives: nativeChannelPrimitives, transport: httpTransport({ gatewayUrl: c.url!, token: () => Promise.resolve(token) }) }));
  }
  return clients;
}

/** Recoveries for `seconds` at CONCURRENCY, each worker on its own users (never two at once on one account). */
/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function round(c: Case, clients: VaultClient[], seconds: number): Promise<void> {
  const cpu0 = cpuSeconds(c.child!.pid!);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let k = 0; performance.now() < end; k++) {
        const u = (w + k * CONCURRENCY) % REAL;
        const prepared = await clients[u]!.prepareRecovery(knownPassword(u));
        const s = performance.now();
        const ws = Date.now();
        try {
          const key = await clients[u]!.recoverKey(knownPassword(u), prepared);
          if (Buffer.compare(Buffer.from(key), Buffer.from(knownSecret(u))) !== 0) throw new Error('recovered the wrong key');
          c.lat.push(performance.now() - s);
          c.ops.push([ws, Date.now()]);
        } catch (e) {
          c.errors++;
          if (c.errors <= 3) console.error(`${c.name}: recovery failed: ${(e as Error).message}`);
        }
      }
    }),
  );
  c.busy += (performance.now() - t0) / 1000;
  c.cpu += cpuSeconds(c.child!.pid!) - cpu0;
}

async function warmUp(c: Case, clients: VaultClient[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let u = next++; u < REAL; u = next++) {
        const key = await clients[u]!.recoverKey(knownPassword(u));
        if (Buffer.compare(Buffer.from(key), Buffer.from(knownSecret(u))) !== 0) throw new Error(`${c.name}: warm-up recovered the wrong key`);
      }
    }),
  );
}

function diskBytes(c: Case): number {
  const path = c.store.slice('sqlite:'.length);
  let total = 0;
  for (const f of [path, `${path}-wal`]) if (existsSync(f)) total += statSync(f).size;
  return total;
}

async function pgBytes(url: string): Promise<number> {
  const u = new URL(url);
  const schema = u.searchParams.get('schema') ?? 'public';
  u.searchParams.delete('schema');
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    const r = await client.query(
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS b FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [schema],
    );
    return Number(r.rows[0].b);
  } finally {
    await client.end();
  }
}

function dirBytes(d: string): number {
  let t = 0;
  for (const f of readdirSync(d)) t += statSync(join(d, f)).size;
  return t;
}

export async function main(): Promise<void> {
  await opaque.ready;
  const keep = arg('data');
  const data = keep ?? (await mkdtemp(join(tmpdir(), 'bkv-bench-record-scale-')));
  await mkdir(data, { recursive: true });
  const cases: Case[] = SIZES.map((n) => ({ name: `sqlite ${n.toLocaleString('en')}`, users: n, dir: join(data, `sqlite-${n}`), store: `sqlite:${join(data, `sqlite-${n}`, 'records.sqlite')}`, lat: [], ops: [], busy: 0, cpu: 0, errors: 0 }));
  let pgServer: TestPostgres | undefined;
  try {
    if (PG > 0) {
      pgServer = await startPostgres();
      const dir = join(data, `pg-${PG}`);
      await rm(dir, { recursive: true, force: true }); // its records lived in the previous run's server
      cases.push({ name: `postgres ${PG.toLocaleString('en')}`, users: PG, dir, store: `${pgServer.url}?schema=bench`, lat: [], ops: [], busy: 0, cpu: 0, errors: 0 });
    }
    for (const c of cases) await loadCase(c, c.store.startsWith('postgres') ? c.store : undefined);
    for (const c of cases) await startMember(c);
    const clients = new Map<Case, VaultClient[]>();
    for (const c of cases) clients.set(c, await clientsFor(c));
    // Warm-up, untimed: every known user recovered once (so the paths the rounds read are in the
    // host's caches, as on a member that has been serving for a while), then 2 s of recoveries.
    for (const c of cases) {
      await warmUp(c, clients.get(c)!);
      await round(c, clients.get(c)!, 2);
      c.lat = [];
      c.ops = [];
      c.busy = 0;
      c.cpu = 0;
    }
    const loads: number[] = [];
    const per = SECONDS / ROUNDS;
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of cases) {
        loads.push(loadavg()[0]!);
        await round(c, clients.get(c)!, per);
      }
    }
    const rows = [];
    for (const c of cases) {
      const st = await stats(c);
      const sorted = [...c.lat].sort((a, b) => a - b);
      const p99 = percentile(sorted, 99);
      // Compaction stalls: recoveries in flight at a compaction that took over 10× the run's p99.
      const during = c.ops.map(([s, e], i) => ({ s, e, ms: c.lat[i]! })).filter((o) => st.compactions.some((t) => t >= o.s && t <= o.e));
      const worstDuring = Math.max(0, ...during.map((o) => o.ms));
      const disk = c.store.startsWith('postgres') ? await pgBytes(c.store) : diskBytes(c);
      rows.push({
        c, st, rate: c.lat.length / c.busy, cpuMs: (c.cpu * 1000) / c.lat.length, p50: percentile(sorted, 50), p99, max: sorted.at(-1) ?? NaN,
        compactions: st.compactions.length, worstDuring, stall: worstDuring > 10 * p99, disk, state: dirBytes(join(c.dir, 'state')),
      });
    }
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    console.log(`\nRecords at scale (single-member vault in its own process; ${CONCURRENCY} concurrent recoveries of ${REAL} known users through the gateway on loopback, ${SECONDS} s per vault in ${ROUNDS} alternating rounds; log compacted every ${SNAPSHOT_EVERY} entries; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} during the rounds)`);
    console.log('| store, users | load s (records/s) | member RSS MiB | member heap MiB | core state (RecordState) | recoveries/s | vault CPU ms per recovery | p50 ms | p99 ms | max ms | compactions (worst recovery across one, ms) | bytes on disk per user |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const l = r.c.load!;
      console.log(
        `| ${r.c.name} | ${l.seconds.toFixed(0)} (${l.recordsPerSecond.toFixed(0)})${l.reused ? ' †' : ''} | ${mib(r.st.rss)} | ${mib(r.st.heapUsed)} | ${(r.st.core.bytes / 1024).toFixed(1)} KiB (${r.st.core.history} points × ${r.st.perPoint.toFixed(0)} B) | ${r.rate.toFixed(1)} | ${r.cpuMs.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(1)} | ${r.compactions} (${r.worstDuring.toFixed(1)}) | ${(r.disk / r.c.users).toFixed(0)} |`,
      );
    }
    if (rows.some((r) => r.c.load!.reused)) console.log('† load made by an earlier run (--data), its time as measured then');
    for (const r of rows) if (r.c.errors) console.log(`${r.c.name}: ${r.c.errors} recoveries failed`);
    console.log(`consensus state on disk (state/): ${rows.map((r) => `${r.c.name} ${(r.state / 1024).toFixed(0)} KiB`).join(', ')}`);
    const sq = rows.filter((r) => r.c.store.startsWith('sqlite:'));
    const small = sq[0]!;
    const large = sq.at(-1)!;
    const stall = rows.some((r) => r.stall);
    console.log(`\nratios ${large.c.name} / ${small.c.name}: RSS ${(large.st.rss / small.st.rss).toFixed(2)} (target ≤ 1.2), recoveries/s ${(large.rate / small.rate).toFixed(2)} (target ≥ 0.9; vault CPU per recovery ${(large.cpuMs / small.cpuMs).toFixed(2)}), p99 ${(large.p99 / small.p99).toFixed(2)} (target ≤ 1.5); compaction stall (a recovery across a compaction over 10× p99): ${stall ? 'yes' : 'no'}`);
    console.log(`record-scale rss-ratio=${(large.st.rss / small.st.rss).toFixed(2)} recoveries-ratio=${(large.rate / small.rate).toFixed(2)} p99-ratio=${(large.p99 / small.p99).toFixed(2)} compaction-stall=${stall ? 'yes' : 'no'}`);
  } finally {
    for (const c of cases) {
      if (c.child && c.child.exitCode === null) {
        c.child.send('stop');
        await Promise.race([new Promise((r) => c.child!.once('exit', r)), new Promise((r) => setTimeout(r, 10_000))]);
        if (c.child.exitCode === null) c.child.kill('SIGKILL');
      }
    }
    await pgServer?.stop();
    if (!keep) await rm(data, { recursive: true, force: true });
    else for (const c of cases) if (c.store.startsWith('postgres')) await rm(c.dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
