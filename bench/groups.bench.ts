/**
 * One replication group against three on the same five members, in one run on one machine: a
 * 5-member fleet with `groups` 1, then with `groups` 3 (no spare groups), each started fresh by
 * `bkv up`, the same users registered (light Argon2id, as bench/fleet.bench.ts), a warm-up
 * recovery of every user (so the gateway has learned every account's group and later requests go
 * straight to the owner group), then the same recovery load. The configurations run in the order
 * `--order` (default 1,3,3,1: the second pair in reverse cancels a drift of the machine's load
 * that is linear in time).
 *
 * Per configuration: recoveries/s and p50/p99 latency; CPU ms per recovery (user + system from
 * /proc) of the members together and of the gateway (`bkv up`) process; per member: which groups it
 * leads, the recoveries its groups served (the leaders' core counters, `bkv_core_events`), and its
 * CPU per recovery; from those the leader and follower CPU per recovery of a group
 * (bench/lib/group-costs.ts: F from the members that lead no group, L of each leader with its
 * follower share removed), each member's idle CPU beforehand (the per-group fixed cost); and the
 * bare @serenity-kit/opaque server CPU per recovery measured in the same run. Then the capacity the
 * measured costs imply (BENCHMARKS.md, "Replication groups: 1 vs 3 groups, and capacity").
 *
 * The last line is
 * `groups-scaling groups=3 recoveries-ratio=<rps3/rps1> cpu-per-recovery-ratio=<cpu3/cpu1> leader-members=<n>`
 * (means over the runs of each configuration; CPU of members and gateway per recovery; n the
 * distinct members leading the 3 groups, fewest over the runs).
 *
 *   npx tsx bench/groups.bench.ts [--users 150] [--recoveries 900] [--concurrency 16] [--idle-ms 5000] [--order 1,3,3,1]
 */
import * as opaque from '@serenity-kit/opaque';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { memberApiUrl, type FleetConfig } from '../src/host/fleet/config.js';
import { createFleet } from '../src/host/fleet/provision.js';
import { BKV_BIN, fetchStatuses, groupLeader } from '../src/host/fleet/supervisor.js';
import { devClients } from './lib/dev-clients.js';
import { bareOpaqueRates, numberArg, percentile, runPool } from './lib/load.js';
import { capacityPlan, idlePerGroup, perEntryFit, splitLeaderFollower, type CapacityInputs, type LeaderFollowerSplit } from './lib/group-costs.js';

const USERS = numberArg('users', 150);
const RECOVERIES = numberArg('recoveries', 900);
const CONCURRENCY = numberArg('concurrency', 16);
const IDLE_MS = numberArg('idle-ms', 5000);
const ORDER = (process.argv.includes('--order') ? process.argv[process.argv.indexOf('--order') + 1]! : '1,3,3,1').split(',').map(Number);
if (ORDER.some((g) => !Number.isInteger(g) || g < 1) || !ORDER.includes(1) || !ORDER.includes(3)) {
  console.error('--order lists group counts, 1 and 3 each at least once, e.g. 1,3,3,1');
  process.exit(2);
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

/** Operations retried after an UNAVAILABLE or CONFLICT answer (a busy machine), counted. */
let retries = 0;
async function retried<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (attempt >= 3 || (code !== 'UNAVAILABLE' && code !== 'CONFLICT')) throw e;
      retries++;
    }
  }
}

/** What one member's metrics say, per group: recoveries its core served, role, term. */
interface MemberMetrics {
  recoveries: Map<number, number>;
  requests: Map<number, number>;
  role: Map<number, number>;
  term: Map<number, number>;
  commit: Map<number, number>;
  rerouted: number;
}

async function scrape(config: FleetConfig): Promise<Map<number, MemberMetrics>> {
  const out = new Map<number, MemberMetrics>();
  await Promise.all(
    config.members.map(async (m) => {
      const text = await (await fetch(`${memberApiUrl(m)}/metrics`)).text();
      const byGroup = (re: RegExp) => new Map([...text.matchAll(re)].map((h) => [Number(h[1]), Number(h[2])] as const));
      out.set(m.id, {
        recoveries: byGroup(/^bkv_core_events\{event="recoveries",group="(\d+)"\} (\d+)/gm),
        requests: byGroup(/^bkv_core_events\{event="requests",group="(\d+)"\} (\d+)/gm),
        role: byGroup(/^bkv_member_raft\{field="role",group="(\d+)"\} (\d+)/gm),
        term: byGroup(/^bkv_member_raft\{field="term",group="(\d+)"\} (\d+)/gm),
        commit: byGroup(/^bkv_member_raft\{field="commit_index",group="(\d+)"\} (\d+)/gm),
        rerouted: Number(/^bkv_member_wrong_group_total\{outcome="rerouted"\} (\d+)/m.exec(text)?.[1] ?? 0),
      });
    }),
  );
  return out;
}

type Relay = { relayed: number; attempts: number; wrongGroup: number; notLeader: number; cachedRoutes: number };
async function relayStats(url: string): Promise<Relay> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { relay: Relay }).relay;
}

interface RunResult {
  groups: number;
  rate: number;
  p50: number;
  p99: number;
  /** CPU ms per recovery: members together, gateway, load generator. */
  members: number;
  gateway: number;
  load: number;
  /** Idle CPU ms per second: each member, and the gateway. */
  idleMember: Map<number, number>;
  idleGateway: number;
  /** Per member: CPU ms per recovery (gross), groups it led, recoveries its led and followed groups served. */
  perMember: Array<{ id: number; cpuMs: number; leads: number[]; led: number; followed: number }>;
  perGroup: number[];
  split: LeaderFollowerSplit;
  leaders: number[];
  leadersStable: boolean;
  /** Log entries (command batches) committed per recovery, all groups together. */
  entries: number;
  /** Relay attempts per relayed request, WRONG_GROUP answers seen by the gateway, requests rerouted by members: during the measured phase. */
  attemptsPerRequest: number;
  wrongGroup: number;
  rerouted: number;
  loadavg: [number, number];
}

async function runConfig(groups: number, secrets: Uint8Array[]): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bkv-bench-groups-'));
  const fleet = await createFleet(dir, { members: 5, basePort: 0, groups, spareGroups: 0 });
  const up = spawn(process.execPath, [BKV_BIN, 'up', '--dir', dir, '--json', '--rate-account', '100000000', '--rate-address', '100000000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const la0 = loadavg()[0]!;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: up.stdout! }).once('line', resolve);
      up.once('exit', (c) => reject(new Error(`bkv up exited with ${c}`)));
    });
    const { url } = JSON.parse(line) as { url?: string };
    if (!url) throw new Error(`bkv up did not start the fleet: ${line}`);
    const config = fleet.config;
    const ids = config.members.map((m) => m.id).sort((a, b) => a - b);
    // Group g prefers the (g mod 5)-th member and hands leadership to it once caught up: wait for that (bounded).
    const preferred = Array.from({ length: groups }, (_, g) => ids[g % ids.length]!);
    let leaders: Array<number | null> = [];
    const deadline = performance.now() + 30_000;
    for (;;) {
      const st = await fetchStatuses(config, 1000);
      leaders = Array.from({ length: groups }, (_, g) => groupLeader(st, g, config.quorum));
      if (leaders.every((l, g) => l === preferred[g]) || performance.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const statuses = await fetchStatuses(config);
    const pids = new Map(ids.map((id) => [id, statuses.get(id)?.pid ?? -1]));
    const { tokenFor, client } = await devClients(url, fleet.fleetKeysPath);
    for (let i = 0; i < USERS; i++) await tokenFor(`user${i}`);

    const cpu = () => ({ member: new Map(ids.map((id) => [id, cpuSeconds(pids.get(id)!)])), gateway: cpuSeconds(up.pid ?? -1), load: cpuSeconds(process.pid) });
    // Idle: each member's own cost with this many groups (ticks, heartbeats), and the gateway's polls.
    const i0 = cpu();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const i1 = cpu();
    const idleSecs = (performance.now() - t0) / 1000;
    const idleMember = new Map(ids.map((id) => [id, ((i1.member.get(id)! - i0.member.get(id)!) * 1000) / idleSecs]));
    const idleGateway = ((i1.gateway - i0.gateway) * 1000) / idleSecs;

    await runPool(USERS, CONCURRENCY, async (i) => {
      await retried(() => client(`user${i}`).registerKey(`password ${i}`, secrets[i]!));
    });
    // Warm-up: every user recovers once, so the gateway's account-to-group cache holds every account.
    await runPool(USERS, CONCURRENCY, async (i) => {
      await retried(() => client(`user${i}`).recoverKey(`password ${i}`));
    });

    const clients = Array.from({ length: RECOVERIES }, (_, i) => client(`user${i % USERS}`));
    const prepared = await Promise.all(clients.map((c, i) => c.prepareRecovery(`password ${i % USERS}`)));
    const m0 = await scrape(config);
    const h0 = await relayStats(url);
    const c0 = cpu();
    const r0 = performance.now();
    const rec = await runPool(RECOVERIES, CONCURRENCY, async (i) => {
      const u = i % USERS;
      let first = true;
      const k = await retried(() => clients[i]!.recoverKey(`password ${u}`, first ? ((first = false), prepared[i]) : undefined));
      if (k[0] !== secrets[u]![0]) throw new Error('recovered the wrong key');
    });
    const c1 = cpu();
    const secs = (performance.now() - r0) / 1000;
    const h1 = await relayStats(url);
    const m1 = await scrape(config);

    // Recoveries each group served (its cores' counters, summed over members: only a leader serves).
    const perGroup = Array.from({ length: groups }, (_, g) => ids.reduce((a, id) => a + (m1.get(id)!.recoveries.get(g) ?? 0) - (m0.get(id)!.recoveries.get(g) ?? 0), 0));
    const served = perGroup.reduce((a, b) => a + b, 0);
    // Who led each group during the phase: the member whose core served its recoveries; stable if no term moved.
    const ledBy = Array.from({ length: groups }, (_, g) => {
      let best = -1;
      let most = -1;
      for (const id of ids) {
        const n = (m1.get(id)!.recoveries.get(g) ?? 0) - (m0.get(id)!.recoveries.get(g) ?? 0);
        if (n > most) [best, most] = [id, n];
      }
      return best;
    });
    const highest = (m: Map<number, MemberMetrics>, g: number) => Math.max(...ids.map((id) => m.get(id)!.commit.get(g) ?? 0));
    const entries = [...Array(groups).keys()].reduce((a, g) => a + highest(m1, g) - highest(m0, g), 0) / RECOVERIES;
    const leadersStable = ids.every((id) => [...Array(groups).keys()].every((g) => m0.get(id)!.term.get(g) === m1.get(id)!.term.get(g)));
    const perMember = ids.map((id) => {
      const leads = ledBy.flatMap((l, g) => (l === id ? [g] : []));
      const led = leads.reduce((a, g) => a + perGroup[g]!, 0);
      return { id, cpuMs: ((c1.member.get(id)! - c0.member.get(id)!) * 1000) / RECOVERIES, leads, led, followed: served - led };
    });
    const split = splitLeaderFollower(
      ids.map((id) => {
        const pm = perMember.find((p) => p.id === id)!;
        const busyMs = (c1.member.get(id)! - c0.member.get(id)!) * 1000 - idleMember.get(id)! * secs;
        return { id, busyMs, led: pm.led, followed: pm.followed };
      }),
    );
    const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      groups,
      rate: rec.rate,
      p50: rec.p50,
      p99: rec.p99,
      members: ((sum(c1.member) - sum(c0.member)) * 1000) / RECOVERIES,
      gateway: ((c1.gateway - c0.gateway) * 1000) / RECOVERIES,
      load: ((c1.load - c0.load) * 1000) / RECOVERIES,
      idleMember,
      idleGateway,
      perMember,
      perGroup,
      split,
      leaders: ledBy,
      leadersStable,
      entries,
      attemptsPerRequest: (h1.attempts - h0.attempts) / Math.max(1, h1.relayed - h0.relayed),
      wrongGroup: h1.wrongGroup - h0.wrongGroup,
      rerouted: ids.reduce((a, id) => a + m1.get(id)!.rerouted - m0.get(id)!.rerouted, 0),
      loadavg: [la0, loadavg()[0]!],
    };
  } finally {
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => up.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

export async function main(): Promise<void> {
  await opaque.ready;
  const secrets = Array.from({ length: USERS }, () => crypto.getRandomValues(new Uint8Array(32)));
  const runs: RunResult[] = [];
  const bare: number[] = [];
  for (const g of ORDER) {
    const at = new Date().toISOString().slice(11, 16);
    const r = await runConfig(g, secrets);
    runs.push(r);
    // The bare OPAQUE server, twice after every configuration (the fleet stopped): the median of all of them.
    for (let i = 0; i < 2; i++) bare.push((await bareOpaqueRates(1)).recCpuMs);
    console.error(`${at} ${g} group(s): ${r.rate.toFixed(0)} recoveries/s, members ${f1(r.members)} + gateway ${f1(r.gateway)} ms per recovery, load ${r.loadavg.map(f1).join('–')}`);
  }
  const bareMs = [...bare].sort((a, b) => a - b)[Math.floor(bare.length / 2)]!;
  const cores = availableParallelism();

  console.log(`\nReplication groups: 5 member processes + gateway (bkv up) on loopback, ${USERS} users, ${RECOVERIES} recoveries at concurrency ${CONCURRENCY} after a warm-up recovery of every user; load generator, gateway and members share ${cores} cores; order ${ORDER.join(',')}`);
  console.log('| run | groups | load | rec/s | p50 ms | p99 ms | CPU ms per recovery: members + gateway | load generator | leaders (group: member) | commands per batch | attempts per request | WRONG_GROUP at gateway / rerouted by members |');
  console.log('|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|');
  runs.forEach((r, i) =>
    console.log(
      `| ${i + 1} | ${r.groups} | ${r.loadavg.map(f1).join('–')} | ${r.rate.toFixed(0)} | ${f1(r.p50)} | ${f1(r.p99)} | ${f1(r.members)} + ${f1(r.gateway)} = ${f1(r.members + r.gateway)} | ${f1(r.load)} | ` +
        `${r.leaders.map((l, g) => `${g}:${l}`).join(' ')}${r.leadersStable ? '' : ' (a term moved)'} | ${f1(2 / r.entries)} | ${f2(r.attemptsPerRequest)} | ${r.wrongGroup} / ${r.rerouted} |`,
    ),
  );

  console.log('\nPer member, CPU ms per recovery of the whole fleet (gross, from /proc) and idle CPU ms per second before the load; recoveries served by each group');
  console.log('| run | groups | member | leads | ms per recovery | idle ms/s |');
  console.log('|---:|---:|---:|---|---:|---:|');
  runs.forEach((r, i) => {
    for (const p of r.perMember) console.log(`| ${i + 1} | ${r.groups} | ${p.id} | ${p.leads.length ? p.leads.map((g) => `group ${g} (${r.perGroup[g]})`).join(', ') : '–'} | ${f2(p.cpuMs)} | ${f1(r.idleMember.get(p.id)!)} |`);
  });

  console.log('\nLeader and follower CPU ms per recovery of a group (idle cost removed; F from the members that lead no group, each leader with its follower share removed)');
  console.log('| run | groups | F follower | L leader (weighted) | L per leading member |');
  console.log('|---:|---:|---:|---:|---|');
  runs.forEach((r, i) =>
    console.log(`| ${i + 1} | ${r.groups} | ${f2(r.split.followerMs)} | ${f2(r.split.leaderMs)} | ${r.split.leaders.map((l) => `member ${l.id}: ${f2(l.leaderMs)}`).join(', ')} |`),
  );

  const of = (g: number) => runs.filter((r) => r.groups === g);
  const agg = (g: number) => {
    const rs = of(g);
    const idle = mean(rs.map((r) => mean([...r.idleMember.values()])));
    return {
      rate: mean(rs.map((r) => r.rate)),
      cpu: mean(rs.map((r) => r.members + r.gateway)),
      gateway: mean(rs.map((r) => r.gateway)),
      L: mean(rs.map((r) => r.split.leaderMs)),
      F: mean(rs.map((r) => r.split.followerMs)),
      idle,
      entries: mean(rs.map((r) => r.entries)),
      p50: mean(rs.map((r) => r.p50)),
      p99: mean(rs.map((r) => r.p99)),
      leaderMembers: Math.min(...rs.map((r) => new Set(r.leaders).size)),
    };
  };
  const a1 = agg(1);
  const a3 = agg(3);
  const idle = idlePerGroup(1, a1.idle, 3, a3.idle);
  console.log('\nMeans per configuration');
  console.log('| groups | rec/s | p50 / p99 ms | fleet CPU ms per recovery | bare OPAQUE ms per recovery | ratio to bare | L leader ms | F follower ms | L + 4F | idle ms/s per member |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [g, a] of [[1, a1], [3, a3]] as const) {
    console.log(`| ${g} | ${a.rate.toFixed(0)} | ${f1(a.p50)} / ${f1(a.p99)} | ${f1(a.cpu)} | ${bareMs.toFixed(3)} | ${f1(a.cpu / bareMs)}x | ${f2(a.L)} | ${f2(a.F)} | ${f2(a.L + 4 * a.F)} | ${f1(a.idle)} |`);
  }
  console.log(`idle member: ${f1(idle.baseMs)} ms/s per process + ${f1(idle.perGroupMs)} ms/s per group it serves (line through the 1- and 3-group means)`);

  // What the costs allow when every member has a core of its own (not this machine: here all share 2 cores).
  // 1 group: its leader is the busiest member. 3 groups on 5 members: a leader of one group follows the other two.
  const ceiling1 = (1000 - a1.idle) / a1.L;
  const ceiling3 = (1000 - a3.idle) / ((a3.L + 2 * a3.F) / 3);
  console.log(
    `one core per member (idle cost included, 100 % busy): 1 group ${ceiling1.toFixed(0)} recoveries/s (its leader's core), ` +
      `3 groups ${ceiling3.toFixed(0)}/s (each leader also follows two groups): ${f2(ceiling3 / ceiling1)}x`,
  );
  // L and F as a part per recovery plus a part per log entry, through the two configurations' batch sizes.
  const fitL = perEntryFit(a1.entries, a1.L, a3.entries, a3.L);
  const fitF = perEntryFit(a1.entries, a1.F, a3.entries, a3.F);
  console.log(
    `per log entry (batch): L = ${f2(fitL.perRecovery)} + ${f2(fitL.perEntry)}·e, F = ${f2(fitF.perRecovery)} + ${f2(fitF.perEntry)}·e ms per recovery, ` +
      `e = log entries per recovery (${f2(a1.entries)} with 1 group, ${f2(a3.entries)} with 3)`,
  );

  const ceiling3same = (1000 - a3.idle) / ((fitL.at(a1.entries) + 2 * fitF.at(a1.entries)) / 3);
  console.log(`one core per member, 3 groups at the 1-group batch size (fit): ${ceiling3same.toFixed(0)}/s, ${f2(ceiling3same / ceiling1)}x the 1-group ceiling`);

  // The capacity model: the 3-group costs as measured, and the fit at 5 and at 1 command per batch; the idle line above.
  const idleCosts = { idlePerReplicaMs: Math.max(0, idle.perGroupMs), idlePerMemberMs: Math.max(0, idle.baseMs), gatewayMs: a3.gateway };
  const costSets = [
    { name: `3 groups as measured (${f1(2 / a3.entries)} commands per batch)`, leaderMs: a3.L, followerMs: a3.F },
    { name: '5 commands per batch (fit)', leaderMs: fitL.at(0.4), followerMs: fitF.at(0.4) },
    { name: '1 command per batch (fit)', leaderMs: fitL.at(2), followerMs: fitF.at(2) },
  ];
  console.log(`\nCapacity (idle ${f1(idleCosts.idlePerMemberMs)} ms/s per member + ${f1(idleCosts.idlePerReplicaMs)} ms/s per group replica, gateway ${f2(idleCosts.gatewayMs)} ms per recovery), 5 replicas per group, each member on its own machine, 50 % of each core used`);
  console.log('| costs | L ms | F ms | target rec/s | cores per member | layout | members | groups | busiest member ms/s (budget) | gateway cores |');
  console.log('|---|---:|---:|---:|---:|---|---:|---:|---:|---:|');
  for (const cs of costSets) {
    for (const rate of [1000, 10_000]) {
      for (const [c, layout] of [[8, 'process-per-group'], [32, 'process-per-group'], [8, 'one-process']] as const) {
        const inp: CapacityInputs = { ...idleCosts, leaderMs: cs.leaderMs, followerMs: cs.followerMs, replicas: 5, cores: c, utilisation: 0.5, layout, maxGroups: 4096 };
        const p = capacityPlan(inp, rate);
        const head = `| ${cs.name} | ${f2(cs.leaderMs)} | ${f2(cs.followerMs)} | ${rate} | ${layout === 'one-process' ? 'any' : c} | ${layout}`;
        console.log(p ? `${head} | ${p.members} | ${p.groups} | ${p.memberMs.toFixed(0)} (${p.budgetMs.toFixed(0)}) | ${f1(p.gatewayCores)} |` : `${head} | none within 10,000 members | | | |`);
      }
    }
  }
  if (retries > 0) console.log(`${retries} operations were retried after an UNAVAILABLE or CONFLICT answer (a busy machine)`);
  console.log(
    `groups-scaling groups=3 recoveries-ratio=${f2(a3.rate / a1.rate)} cpu-per-recovery-ratio=${f2(a3.cpu / a1.cpu)} leader-members=${a3.leaderMembers}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
