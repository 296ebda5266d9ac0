/**
 * Fleet throughput: registrations/s and recoveries/s of a five-member fleet (member processes, and
 * the gateway in its own `bkv up` process) next to the bare @serenity-kit/opaque server calls in
 * the same run; commit latency p50/p99 from the members' histograms; member memory (RSS); and the
 * same with a fleet that already holds --preload users (default one million).
 *
 * The preloaded records are installed as a sealed snapshot in every member's state directory
 * before the members start, through `MemberStorage.install` (the state a fleet reaches after
 * applying that many `register` entries); pushing a million entries through consensus would take
 * far longer than the measurement.
 *
 * The last line is `fleet-cpu-ratio recovery=<x> registration=<y>`: the members' and the gateway's
 * CPU per operation (empty fleet) over the bare OPAQUE server CPU per operation, both measured in
 * this run (the load generator's CPU is not counted). Before it, each process's CPU over the same
 * bare figure (leader, each follower, gateway: with members on machines of their own the leader's
 * is what bounds a group's rate), and a recovery's latency at low load (one at a time, `--serial`
 * of them).
 *
 * `--profile DIR` starts `bkv up` (gateway) with `--cpu-prof` into DIR (its supervisor passes the flag on
 * to the members it spawns), and
 * writes DIR/phases.json: each process's pid and role, and the monotonic time (µs) at which the
 * registration and recovery phases began and ended, for `scripts/cpuprofile-summary.ts`.
 *
 * Before the idle and timed phases, a warm-up (`--warmup N`, default 3,000; 0 skips it) registers
 * N/6 users of its own and runs N recoveries for them, untimed. Right after start V8 is still
 * compiling the hot paths: 600 cold recoveries cost about two thirds more fleet CPU each than 600
 * after this warm-up (BENCHMARKS.md), and V8's compiler threads were still busy after a warm-up of
 * 600 and had settled after 3,000. A fleet that runs for months pays that once, so the timed figures are the steady state;
 * `--warmup 0` gives the cold ones.
 *
 * `--perf DIR` (Linux, with `perf` installed) starts `bkv up` and its members with
 * `--perf-prof --interpreted-frames-native-stack` (V8 writes every piece of code it compiles, with
 * its address and the time, to DIR/jit-<pid>.dump) and records every fleet process with
 * `perf record -g -k mono` (software CPU clock, `--perf-hz`, default 999 Hz), one recording for the
 * registrations and one for the recoveries, each enabled exactly while its phase runs. After the
 * fleet has stopped, `perf inject --jit` names each sample's compiled code by the dump entry that
 * was live at the sample's time (DIR/registration.perf.data, DIR/recovery.perf.data, and one
 * jitted-<pid>-<n>.so per code object beside them, a few hundred MB in all); with phases.json, for
 * `scripts/perf-summary.ts`. (`--perf-basic-prof` symbol maps cannot do this: V8 reuses the
 * addresses of code it has freed, and a map keeps the first name an address had. In a run with
 * them up to a third of the gateway's samples carried the names of module start-up code.)
 * Unlike `--cpu-prof` (the main thread's stack whenever it is not idle, blocked syscalls
 * included), perf samples only time on a CPU, in every thread and in the kernel.
 *
 *   npx tsx bench/fleet.bench.ts [--users 200] [--recoveries 1500] [--concurrency 16] [--preload 1000000] [--serial 200] [--idle-ms 3000] [--warmup 3000] [--profile DIR | --perf DIR]
 */
import * as opaque from '@serenity-kit/opaque';
import { devClients } from './lib/dev-clients.js';
import { LIGHT_KSF, bareOpaqueRates, numberArg, percentile, runPool } from './lib/load.js';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { open, readFile, rm, mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeFleetSecrets } from '../src/trusted/core/fleet-secrets.js';
import { deriveRecordKeys, recordId, sealRecord } from '../src/trusted/records/record-keys.js';
import { RootBuilder, compareKeys, valueHash } from '../src/shared/record-tree/index.js';
import { openRecordStore } from '../src/host/record-store/index.js';
import { decodeMemberIdentity, memberApiUrl, memberStorageKey, type FleetConfig } from '../src/host/fleet/config.js';
import { createFleet, fleetPaths } from '../src/host/fleet/provision.js';
import { fetchStatuses, BKV_BIN } from '../src/host/fleet/supervisor.js';
import { installRecordsSnapshot } from '../src/host/member-state-install.js';
import { nativeChannelPrimitives } from '../src/host/fleet/native-crypto.js';
import { fromB64 } from '../src/shared/protocol/messages.js';

const USERS = numberArg('users', 200);
const RECOVERIES = numberArg('recoveries', 1500);
const CONCURRENCY = numberArg('concurrency', 16);
const PRELOAD = numberArg('preload', 1_000_000);
const SERIAL = numberArg('serial', 200);
const IDLE_MS = numberArg('idle-ms', 3000);
/** Untimed operations first, so that start-up work (V8 compiling the hot paths) is not charged to the timed ones. */
const WARMUP = numberArg('warmup', 3000);
const dirArg = (name: string) => (process.argv.includes(name) ? resolvePath(process.argv[process.argv.indexOf(name) + 1]!) : null);
const PROFILE_DIR = dirArg('--profile');
const PERF_DIR = dirArg('--perf');
const PERF_HZ = numberArg('perf-hz', 999);
if (PROFILE_DIR && PERF_DIR) throw new Error('--profile and --perf do not go together (the V8 profiler would be in perf\'s samples)');
if (PERF_DIR) {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('--perf needs Linux perf (Debian: apt-get install linux-perf)');
  }
}

/** Monotonic microseconds, the clock V8's CPU profiles time their samples with. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Gives every member `count` synthetic users: each record is sealed with the fleet's record keys
 * (the core's own sealing code), the root is computed by the record tree's streaming builder (the
 * code a member uses to check a repaired store), every member's record store is filled through
 * `replace` (which recomputes and checks that root), and a vault state snapshot naming the root is
 * sealed per member and installed through `MemberStorage.install` as the member's state at index 1,
 * term 1, as if the fleet had committed one batch of those registrations.
 */
export async function preload(dir: string, config: FleetConfig, count: number): Promise<number> {
  const t0 = performance.now();
  const first = fleetPaths(dir).member(config.members[0]!.id);
  const secrets = decodeFleetSecrets(new Uint8Array(await readFile(join(first, 'fleet-secrets.bin'))));
  const keys = deriveRecordKeys(secrets.storageKey);
  const opaqueRecord = crypto.getRandomValues(new Uint8Array(192));
  const wrappedKey = crypto.getRandomValues(new Uint8Array(60));
  const records: Array<{ key: Uint8Array; value: Uint8Array }> = [];
  for (let i = 1; i <= count; i++) {
    const key = recordId(keys, `preloaded-${i}`);
    const value = sealRecord(keys, key, { status: 'live', version: 1, opaqueRecord, wrappedKey, ksf: LIGHT_KSF, limit: 10, attemptsRemaining: 10, open: [], recent: [] }, crypto.getRandomValues(new Uint8Array(12)), nativeChannelPrimitives);
    records.push({ key, value });
  }
  records.sort((a, b) => compareKeys(a.key, b.key));
  const builder = new RootBuilder();
  for (const r of records) builder.add(r.key, valueHash(r.value));
  const root = builder.finish();
  async function* pages() {
    for (let i = 0; i < records.length; i += 4096) yield records.slice(i, i + 4096);
  }
  const clusterId = fromB64(config.clusterId, 'clusterId');
  for (const m of config.members) {
    const md = fleetPaths(dir).member(m.id);
    const store = await openRecordStore(`sqlite:${join(md, 'records.sqlite')}`);
    await store.replace({ index: 1, root }, pages());
    await store.close();
    const identity = decodeMemberIdentity(new Uint8Array(await readFile(join(md, 'member.bin'))));
    await installRecordsSnapshot(join(md, 'state'), m.id, memberStorageKey(identity, clusterId), { root, count });
  }
  return (performance.now() - t0) / 1000;
}

/** The client's OPAQUE finishLogin with the benchmark's Argon2id (ms, average of 50): part of each measured recovery. */
function clientFinishMs(): number {
  const setup = opaque.server.createSetup();
  const s = opaque.client.startRegistration({ password: 'pw' });
  const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup: setup, userIdentifier: 'u', registrationRequest: s.registrationRequest });
  const ksf = { 'argon2id-custom': LIGHT_KSF };
  const { registrationRecord } = opaque.client.finishRegistration({ clientRegistrationState: s.clientRegistrationState, registrationResponse, password: 'pw', keyStretching: ksf });
  let total = 0;
  for (let i = 0; i < 50; i++) {
    const c = opaque.client.startLogin({ password: 'pw' });
    const r = opaque.server.startLogin({ serverSetup: setup, registrationRecord, startLoginRequest: c.startLoginRequest, userIdentifier: 'u' });
    const t = performance.now();
    opaque.client.finishLogin({ clientLoginState: c.clientLoginState, loginResponse: r.loginResponse, password: 'pw', keyStretching: ksf });
    total += performance.now() - t;
  }
  return total / 50;
}

/** Operations retried after an UNAVAILABLE or CONFLICT answer (a busy machine), counted. */
let retries = 0;
async function retried<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      // UNAVAILABLE: no answer in time; CONFLICT: the gateway's failover resent a recovery start
      // the leader had already seen, so the answer went to the first copy. Both start over.
      const code = (e as { code?: string }).code;
      if (attempt >= 3 || (code !== 'UNAVAILABLE' && code !== 'CONFLICT')) throw e;
      retries++;
    }
  }
}

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as (o?: { type: 'major' }) => void)({ type: 'major' });
}

/** Work counters summed over the members: peer frames sent, and the highest commit index (log entries, one per batch). */
async function workCounters(config: FleetConfig): Promise<{ frames: number; entries: number; written: number; transactions: number }> {
  let frames = 0;
  let entries = 0;
  let written = 0;
  let transactions = 0;
  const groupEntries = new Map<number, number>();
  for (const m of config.members) {
    const text = await (await fetch(`${memberApiUrl(m)}/metrics`)).text();
    frames += Number(/^bkv_member_transport\{event="sent"\} (\d+)/m.exec(text)?.[1] ?? 0);
    // Entries: the highest commit index of each group, summed over groups; store figures of every group.
    for (const hit of text.matchAll(/^bkv_member_raft\{field="commit_index",group="(\d+)"\} (\d+)/gm)) {
      const g = Number(hit[1]);
      groupEntries.set(g, Math.max(groupEntries.get(g) ?? 0, Number(hit[2])));
    }
    for (const hit of text.matchAll(/^bkv_member_record_store\{field="written",[^}]*\} (\d+)/gm)) written += Number(hit[1]);
    for (const hit of text.matchAll(/^bkv_member_record_store\{field="transactions",[^}]*\} (\d+)/gm)) transactions += Number(hit[1]);
  }
  for (const e of groupEntries.values()) entries += e;
  return { frames, entries, written, transactions };
}

/** p50/p99 of the commit-latency histograms of every member, summed (bucket upper bounds). */
async function commitLatency(config: FleetConfig): Promise<{ p50: number; p99: number }> {
  const buckets = new Map<number, number>();
  for (const m of config.members) {
    const text = await (await fetch(`${memberApiUrl(m)}/metrics`)).text();
    for (const hit of text.matchAll(/bkv_member_commit_seconds_bucket\{le="([^"]+)"[^}]*\} (\d+)/g)) {
      const le = hit[1] === '+Inf' ? Infinity : Number(hit[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(hit[2]));
    }
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  const q = (p: number) => (sorted.find(([, c]) => c >= p * total)?.[0] ?? NaN) * 1000;
  return { p50: q(0.5), p99: q(0.99) };
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

async function rssMiB(config: FleetConfig): Promise<number[]> {
  const st = await fetchStatuses(config, 2000);
  return [...st.values()].map((s) => (s ? Number(execFileSync('ps', ['-o', 'rss=', '-p', String(s.pid)]).toString().trim()) / 1024 : NaN));
}

/**
 * `perf record` attached to `pids`, writing `out`, started disabled and switched on and off through
 * its control FIFO (each command acknowledged), so that a recording holds exactly one phase.
 */
async function startPerf(pids: number[], out: string) {
  const raw = rawPerfPath(out);
  const ctlPath = `${out}.ctl`;
  const ackPath = `${out}.ack`;
  await rm(ctlPath, { force: true });
  await rm(ackPath, { force: true });
  execFileSync('mkfifo', [ctlPath, ackPath]);
  const perf = spawn('perf', ['record', '-q', '-k', 'mono', '-e', 'cpu-clock', '-F', String(PERF_HZ), '-g', '-D', '-1', '--control', `fifo:${ctlPath},${ackPath}`, '-p', pids.join(','), '-o', raw], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | string | null>((resolve) => perf.once('exit', (code, sig) => resolve(sig ?? code)));
  // A perf that cannot record (no permission: kernel.perf_event_paranoid) exits at once: fail, not hang.
  const died = exited.then((how) => {
    throw new Error(`perf record exited (${how}) before the phase ended`);
  });
  died.catch(() => undefined);
  // Read-write opens: on Linux they do not wait for the other end of a FIFO.
  const ctl = await open(ctlPath, 'r+');
  const ack = await open(ackPath, 'r+');
  const command = async (c: string) => {
    await ctl.write(`${c}\n`);
    const buf = Buffer.alloc(16);
    const { bytesRead } = await Promise.race([ack.read(buf, 0, buf.length), died]);
    if (!buf.subarray(0, bytesRead).toString().startsWith('ack')) throw new Error(`perf did not acknowledge ${c}`);
  };
  return {
    enable: () => command('enable'),
    async stop() {
      await command('disable');
      perf.kill('SIGINT');
      await exited;
      await ctl.close();
      await ack.close();
      await rm(ctlPath, { force: true });
      await rm(ackPath, { force: true });
    },
  };
}

/** Where a phase's recording goes before `perf inject --jit` names its compiled code. */
const rawPerfPath = (out: string) => out.replace(/\.perf\.data$/, '.raw.perf.data');

/**
 * After the fleet has stopped (the injection is CPU work that must not land in a timed phase):
 * each raw recording becomes DIR/<phase>.perf.data, its compiled code named from the processes'
 * jit dumps; the raw one is removed.
 */
async function injectJit(perfDir: string): Promise<void> {
  for (const phase of ['registration', 'recovery']) {
    const out = join(perfDir, `${phase}.perf.data`);
    const raw = rawPerfPath(out);
    if (!existsSync(raw)) continue;
    execFileSync('perf', ['inject', '--jit', '-i', raw, '-o', out], { cwd: perfDir, stdio: ['ignore', 'ignore', 'inherit'] });
    await rm(raw, { force: true });
  }
}

async function runFleet(preloadCount: number, profile: string | null, perfDir: string | null = null) {
  const dir = await mkdtemp(join(tmpdir(), 'bkv-bench-fleet-'));
  const fleet = await createFleet(dir, { members: 5, basePort: 0 });
  let preloadSecs = 0;
  if (preloadCount > 0) {
    preloadSecs = await preload(dir, fleet.config, preloadCount);
    // The million records were built in this process (the load generator): collect them now, so
    // their garbage is not charged to the client side of the timed recoveries.
    collectGarbage();
  }
  // The supervisor in `bkv up` passes these flags on to the members it starts (profilingArgs).
  const profArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : perfDir ? ['--perf-prof', '--interpreted-frames-native-stack'] : [];
  if (profile) await mkdir(profile, { recursive: true });
  if (perfDir) await mkdir(perfDir, { recursive: true });
  // With --perf, V8 writes its jit-<pid>.dump (and a code-event log, isolate-*.log) into each process's working directory: DIR.
  const up = spawn(process.execPath, [...profArgs, BKV_BIN, 'up', '--dir', dir, '--json', '--rate-account', '100000000', '--rate-address', '100000000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    ...(perfDir ? { cwd: perfDir } : {}),
  });
  const phases: Record<string, number> = {};
  /** CPU seconds of each profiled process at each phase mark (pid → mark → seconds). */
  const phaseCpu: Record<string, Record<string, number>> = {};
  let roles: Record<string, string> = {};
  const mark = (name: string) => {
    phases[name] = monoUs();
    for (const pid of Object.keys(roles)) (phaseCpu[pid] ??= {})[name] = cpuSeconds(Number(pid));
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: up.stdout! }).once('line', resolve);
      up.once('exit', (c) => reject(new Error(`bkv up exited with ${c}`)));
    });
    const { url } = JSON.parse(line) as { url?: string };
    if (!url) throw new Error(`bkv up did not start the fleet: ${line}`);
    const { tokenFor, client } = await devClients(url, fleet.fleetKeysPath);
    const secrets = Array.from({ length: USERS }, () => crypto.getRandomValues(new Uint8Array(32)));
    for (let i = 0; i < USERS; i++) await tokenFor(`user${i}`);
    const statuses = [...(await fetchStatuses(fleet.config)).values()];
    const memberPids = statuses.map((s) => s?.pid ?? -1);
    roles = Object.fromEntries([...statuses.map((s) => [String(s?.pid), s?.role ?? 'unknown']), [String(up.pid), 'gateway']]);
    const leaderPid = statuses.find((s) => s?.role === 'leader')?.pid ?? -1;
    const cpu = () => ({
      members: memberPids.reduce((a, p) => a + cpuSeconds(p), 0),
      leader: cpuSeconds(leaderPid),
      gateway: cpuSeconds(up.pid ?? -1),
      load: cpuSeconds(process.pid),
    });
    const perOp = (a: ReturnType<typeof cpu>, b: ReturnType<typeof cpu>, n: number) => ({
      members: ((b.members - a.members) * 1000) / n,
      // The member that led when the run began (NaN if none did), and the mean of the others.
      leader: ((b.leader - a.leader) * 1000) / n,
      follower: ((b.members - a.members - (b.leader - a.leader)) * 1000) / n / (memberPids.length - 1),
      gateway: ((b.gateway - a.gateway) * 1000) / n,
      load: ((b.load - a.load) * 1000) / n,
    });
    if (WARMUP > 0) {
      mark('warmupStart');
      const warmUsers = Math.max(1, Math.ceil(WARMUP / 6));
      const warmSecrets = Array.from({ length: warmUsers }, () => crypto.getRandomValues(new Uint8Array(32)));
      for (let i = 0; i < warmUsers; i++) await tokenFor(`warm${i}`);
      await runPool(warmUsers, CONCURRENCY, async (i) => {
        await retried(() => client(`warm${i}`).registerKey(`warm password ${i}`, warmSecrets[i]!));
      });
      await runPool(WARMUP, CONCURRENCY, async (i) => {
        const k = await retried(() => client(`warm${i % warmUsers}`).recoverKey(`warm password ${i % warmUsers}`));
        if (k[0] !== warmSecrets[i % warmUsers]![0]) throw new Error('recovered the wrong key');
      });
      mark('warmupEnd');
    }
    // An idle fleet's own cost (ticks, heartbeats, the gateway's status polls), per second.
    mark('idleStart');
    const cpuI0 = cpu();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idle = perOp(cpuI0, cpu(), IDLE_MS / 1000);
    mark('idleEnd');
    const fleetPids = [...memberPids, up.pid ?? -1].filter((p) => p > 0);
    const regPerf = perfDir ? await startPerf(fleetPids, join(perfDir, 'registration.perf.data')) : null;
    await regPerf?.enable();
    const cpuR0 = cpu();
    mark('registrationStart');
    const reg = await runPool(USERS, CONCURRENCY, async (i) => {
      await retried(() => client(`user${i}`).registerKey(`password ${i}`, secrets[i]!));
    });
    mark('registrationEnd');
    const cpuPerReg = perOp(cpuR0, cpu(), USERS);
    await regPerf?.stop();
    // The client's round-trip-free work (KE1 and its HPKE sealing) is prepared before the clock and
    // the CPU counters start, as an app does while the user types: the timed part is the server's.
    const clients = Array.from({ length: RECOVERIES }, (_, i) => client(`user${i % USERS}`));
    const prepared = await Promise.all(clients.map((c, i) => c.prepareRecovery(`password ${i % USERS}`)));
    const work0 = await workCounters(fleet.config);
    const recPerf = perfDir ? await startPerf(fleetPids, join(perfDir, 'recovery.perf.data')) : null;
    await recPerf?.enable();
    const cpu0 = cpu();
    mark('recoveryStart');
    const rec = await runPool(RECOVERIES, CONCURRENCY, async (i) => {
      const u = i % USERS;
      let first = true;
      const k = await retried(() => clients[i]!.recoverKey(`password ${u}`, first ? ((first = false), prepared[i]) : undefined));
      if (k[0] !== secrets[u]![0]) throw new Error('recovered the wrong key');
    });
    mark('recoveryEnd');
    /** CPU milliseconds per recovery: all members together, the gateway process, the load generator. */
    const cpuPerRec = perOp(cpu0, cpu(), RECOVERIES);
    await recPerf?.stop();
    const work1 = await workCounters(fleet.config);
    /** Per recovery: log entries (batches) committed, and consensus frames sent by all members. */
    const workPerRec = {
      entries: (work1.entries - work0.entries) / RECOVERIES,
      frames: (work1.frames - work0.frames) / RECOVERIES,
      // Store writes on all members: batches written, and the transactions that wrote them.
      written: (work1.written - work0.written) / RECOVERIES,
      transactions: (work1.transactions - work0.transactions) / RECOVERIES,
    };
    // Low load: one recovery at a time (KE1 prepared ahead, as above; the client's finishLogin,
    // with its Argon2id at 8 KiB and one pass, is inside the measured time and reported apart).
    const serialLat: number[] = [];
    if (SERIAL > 0) {
      const sc = Array.from({ length: SERIAL }, (_, i) => client(`user${i % USERS}`));
      const sp = await Promise.all(sc.map((c, i) => c.prepareRecovery(`password ${i % USERS}`)));
      for (let i = 0; i < SERIAL; i++) {
        const t = performance.now();
        let first = true;
        await retried(() => sc[i]!.recoverKey(`password ${i % USERS}`, first ? ((first = false), sp[i]) : undefined));
        serialLat.push(performance.now() - t);
      }
      serialLat.sort((a, b) => a - b);
    }
    const serial = { p50: percentile(serialLat, 50), p99: percentile(serialLat, 99) };
    const lat = await commitLatency(fleet.config);
    if (process.env.BKV_BENCH_DEBUG) {
      for (const m of fleet.config.members) {
        const text = await (await fetch(`${memberApiUrl(m)}/metrics`)).text();
        console.error(`member ${m.id}:`, [...text.matchAll(/^(bkv_member_transport\{[^}]*\}|bkv_member_raft\{field="(?:role|commit_index)"\}|bkv_member_proposals_total\{[^}]*\}|bkv_member_process_cpu_seconds_total) (.*)$/gm)].map((h) => `${h[1]}=${h[2]}`).join(' '));
      }
    }
    const rss = await rssMiB(fleet.config);
    const records = Math.max(...[...(await fetchStatuses(fleet.config)).values()].map((s) => s?.records ?? 0));
    return { reg, rec, lat, rss, records, preloadSecs, cpuPerRec, cpuPerReg, serial, idle, workPerRec };
  } finally {
    // `bkv up` may have exited already (it failed to start): then there is no exit to wait for.
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => up.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
    for (const d of [profile, perfDir]) {
      if (d) await writeFile(join(d, 'phases.json'), JSON.stringify({ roles, phases, cpu: phaseCpu, users: USERS, recoveries: RECOVERIES, perfHz: PERF_HZ }, null, 2));
    }
  }
}

export async function main(): Promise<Record<string, number>> {
  await opaque.ready;
  // One-second measurements of the bare server calls, three before the fleet runs and three after,
  // the median of each figure: on a shared machine one alone moved by half.
  const bs = [await bareOpaqueRates(1), await bareOpaqueRates(1), await bareOpaqueRates(1)];
  const empty = await runFleet(0, PROFILE_DIR, PERF_DIR);
  bs.push(await bareOpaqueRates(1), await bareOpaqueRates(1), await bareOpaqueRates(1));
  if (PERF_DIR) await injectJit(PERF_DIR);
  const med = (k: keyof (typeof bs)[number]) => {
    const v = bs.map((x) => x[k]).sort((a, c) => a - c);
    return (v[2]! + v[3]!) / 2;
  };
  const b = { regRate: med('regRate'), recRate: med('recRate'), regCpuMs: med('regCpuMs'), recCpuMs: med('recCpuMs') };
  const full = PRELOAD > 0 ? await runFleet(PRELOAD, null) : null;
  const rssText = (r: number[]) => `${Math.min(...r).toFixed(0)}–${Math.max(...r).toFixed(0)}`;
  console.log(`\nFleet (5 member processes + gateway process, loopback, ${USERS} users, ${RECOVERIES} recoveries, concurrency ${CONCURRENCY}, after ${WARMUP} warm-up recoveries; load generator, gateway and members share ${(await import('node:os')).cpus().length} cores)`);
  console.log('| fleet | operation | ops/s | p50 ms | p99 ms | bare OPAQUE server ops/s | ratio | commit p50 / p99 ms | member RSS MiB |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  const rows = [['empty', empty] as const, ...(full ? [[`${full.records.toLocaleString('en')} records`, full] as const] : [])];
  for (const [name, r] of rows) {
    console.log(`| ${name} | registrations | ${r.reg.rate.toFixed(0)} | ${r.reg.p50.toFixed(1)} | ${r.reg.p99.toFixed(1)} | ${b.regRate.toFixed(0)} | ${(r.reg.rate / b.regRate).toFixed(2)}x | | |`);
    console.log(`| ${name} | recoveries | ${r.rec.rate.toFixed(0)} | ${r.rec.p50.toFixed(1)} | ${r.rec.p99.toFixed(1)} | ${b.recRate.toFixed(0)} | ${(r.rec.rate / b.recRate).toFixed(2)}x | ${r.lat.p50} / ${r.lat.p99} | ${rssText(r.rss)} |`);
  }
  console.log('\nCPU ms per recovery (user + system, from /proc): members together / gateway process / load generator (client side of OPAQUE, Argon2id, HPKE, HTTP)');
  const split = (c: { leader: number; follower: number }) => `(leader ${c.leader.toFixed(1)}, each follower ${c.follower.toFixed(1)})`;
  for (const [name, r] of rows) console.log(`  ${name}: ${r.cpuPerRec.members.toFixed(1)} ${split(r.cpuPerRec)} / ${r.cpuPerRec.gateway.toFixed(1)} / ${r.cpuPerRec.load.toFixed(1)}`);
  // What these cores could serve if the load came from elsewhere, and what the CPU use allows at
  // all: derived from the measured CPU per recovery, not measured directly.
  const cores = (await import('node:os')).availableParallelism();
  for (const [name, r] of rows) {
    const fleetMs = r.cpuPerRec.members + r.cpuPerRec.gateway;
    console.log(
      `  ${name}: CPU-bound ceiling on ${cores} cores ${((cores * 1000) / (fleetMs + r.cpuPerRec.load)).toFixed(0)}/s with this load generator, ` +
        `${((cores * 1000) / fleetMs).toFixed(0)}/s with the load generated elsewhere`,
    );
  }
  for (const [name, r] of rows) {
    console.log(
      `  ${name}: per recovery ${r.workPerRec.entries.toFixed(2)} log entries (${(2 / r.workPerRec.entries).toFixed(1)} commands per batch) and ` +
        `${r.workPerRec.frames.toFixed(1)} consensus frames sent (heartbeats and answers included); ` +
        `record stores of all members: ${r.workPerRec.written.toFixed(2)} batches written in ${r.workPerRec.transactions.toFixed(2)} transactions`,
    );
  }
  console.log('\nCPU ms per registration: members together / gateway process / load generator');
  for (const [name, r] of rows) console.log(`  ${name}: ${r.cpuPerReg.members.toFixed(1)} ${split(r.cpuPerReg)} / ${r.cpuPerReg.gateway.toFixed(1)} / ${r.cpuPerReg.load.toFixed(1)}`);
  for (const [name, r] of rows) {
    // An idle fleet's cost per second (ticks, heartbeats, polls), and the part of each operation's CPU it explains at the measured rates.
    const idleMs = r.idle.members + r.idle.gateway;
    console.log(
      `CPU ms per second of an idle fleet (${name}): members together ${r.idle.members.toFixed(1)}, gateway ${r.idle.gateway.toFixed(1)}; ` +
        `at the measured rates that is ${(idleMs / r.rec.rate).toFixed(1)} ms of each recovery and ${(idleMs / r.reg.rate).toFixed(1)} ms of each registration`,
    );
  }
  console.log(`bare OPAQUE server CPU ms: ${b.regCpuMs.toFixed(3)} per registration, ${b.recCpuMs.toFixed(3)} per recovery`);
  // With each member on a machine of its own (as deployed) a group's rate is bounded by its busiest
  // process, the leader, not by the sum over the fleet: each role's CPU over the same bare figure.
  const perRole = (c: { leader: number; follower: number; gateway: number }, bare: number) =>
    `leader ${(c.leader / bare).toFixed(2)}, each follower ${(c.follower / bare).toFixed(2)}, gateway ${(c.gateway / bare).toFixed(2)}`;
  console.log(`each process's CPU over the bare OPAQUE server CPU (empty fleet): recovery ${perRole(empty.cpuPerRec, b.recCpuMs)}; registration ${perRole(empty.cpuPerReg, b.regCpuMs)}`);
  const clientFinish = clientFinishMs();
  if (SERIAL > 0) {
    console.log(
      `\nrecovery latency at low load (one at a time, ${SERIAL} recoveries, empty fleet): p50 ${empty.serial.p50.toFixed(1)} ms, p99 ${empty.serial.p99.toFixed(1)} ms ` +
        `(includes the client's finishLogin, ${clientFinish.toFixed(2)} ms with Argon2id 8 KiB, 1 pass; the client's production Argon2id is not in it)`,
    );
  }
  if (full) {
    console.log(`\n${PRELOAD.toLocaleString('en')} users preloaded as a sealed snapshot in every member (${full.preloadSecs.toFixed(0)} s to build and seal); recoveries/s with them: ${((full.rec.rate / empty.rec.rate) * 100).toFixed(0)}% of the empty fleet`);
  }
  if (retries > 0) console.log(`${retries} operations were retried after an UNAVAILABLE or CONFLICT answer (a busy machine)`);
  const x = (empty.cpuPerRec.members + empty.cpuPerRec.gateway) / b.recCpuMs;
  const y = (empty.cpuPerReg.members + empty.cpuPerReg.gateway) / b.regCpuMs;
  console.log(`fleet-cpu-ratio recovery=${x.toFixed(2)} registration=${y.toFixed(2)}`);
  return {
    regRate: empty.reg.rate, recRate: empty.rec.rate, bareReg: b.regRate, bareRec: b.recRate,
    ...(full ? { recRateFull: full.rec.rate, regRateFull: full.reg.rate } : {}),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
