/**
 * The deterministic simulator: real consensus code (RaftNode + RaftDriver) on a simulated network,
 * disk and clock, all driven by one seeded PRNG. Faults: loss, duplication, delay/reordering,
 * corruption, replay and misdirection, partitions (two-way and one-way), crash-restarts (losing
 * unconfirmed writes), disk rollbacks and wipes (the monotonic counter stays), clock-rate skew.
 */
import { identityFromSeed } from '../trusted/consensus/auth.js';
import type { Identity } from '../trusted/consensus/auth.js';
import type { RaftDriver } from '../trusted/consensus/driver.js';
import type { RaftNode } from '../trusted/consensus/node.js';
import { createConsensusMember } from '../trusted/member.js';
import type { RaftConfig } from '../trusted/consensus/types.js';
import type { ReplicatedStateMachine } from '../trusted/core/replication.js';
import { SafetyChecker } from './checker.js';
import { SimDisk } from './disk.js';
import { EventQueue } from './events.js';
import { CALM, SimNetwork } from './network.js';
import type { NetworkFaults } from './network.js';
import { Prng } from './prng.js';
import { VaultWorkload } from './vault-workload.js';
import { EscrowWorkload } from './workload.js';
import type { SimWorkload } from './workload.js';

export type WorkloadName = 'vault' | 'escrow';

export function makeWorkload(name: WorkloadName): SimWorkload {
  return name === 'escrow' ? new EscrowWorkload() : new VaultWorkload();
}

export interface SimOptions {
  seed: number;
  ops: number;
  members?: number;
  /** Inject faults (default true). */
  faults?: boolean;
  /** The workload: a name, or an instance (default: the real vault state machine). */
  workload?: WorkloadName | SimWorkload;
  /** Simulated ms allowed, after all faults heal, for every operation to finish and members to converge. */
  healBoundMs?: number;
  /** TEST ONLY: run a deliberately broken commit rule to show the checker can fail. */
  unsafeCommitQuorum?: number;
  /** TEST ONLY: disable the rollback defence. */
  unsafeAcceptRollback?: boolean;
}

export interface SimStats {
  simTimeMs: number;
  opsOk: number;
  opsFailed: number;
  committed: number;
  elections: number;
  crashes: number;
  rollbacks: number;
  learnerBoots: number;
  partitions: number;
  snapshotsInstalled: number;
  droppedAuth: number;
  droppedMalformed: number;
  delivered: number;
  diskWrites: number;
  /** Bytes handed to the disks (hard states, frames, snapshots). */
  diskBytes: number;
  healTimeMs: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: SimStats;
  reproduce: string;
}

interface Member {
  id: number;
  identity: Identity;
  storageKey: Uint8Array;
  disk: SimDisk;
  rng: Prng;
  rate: number;
  offset: number;
  up: boolean;
  epoch: number;
  boots: number;
  sm: ReplicatedStateMachine | null;
  node: RaftNode | null;
  driver: RaftDriver | null;
}

const STORM: NetworkFaults = { loss: 0.05, duplicate: 0.03, corrupt: 0.01, replay: 0.02, minDelay: 1, maxDelay: 20, straggle: 0.03 };

export function runSimulation(opts: SimOptions): SimResult {
  const n = opts.members ?? 5;
  const faultsOn = opts.faults ?? true;
  const workload = typeof opts.workload === 'object' ? opts.workload : makeWorkload(opts.workload ?? 'vault');
  const healBound = opts.healBoundMs ?? 30_000;
  const f = Math.floor((n - 1) / 2);
  const rng = new Prng(opts.seed);
  const q = new EventQueue();
  const checker = new SafetyChecker();
  const stats: SimStats = {
    simTimeMs: 0, opsOk: 0, opsFailed: 0, committed: 0, elections: 0, crashes: 0, rollbacks: 0, learnerBoots: 0,
    partitions: 0, snapshotsInstalled: 0, droppedAuth: 0, droppedMalformed: 0, delivered: 0, diskWrites: 0, diskBytes: 0, healTimeMs: 0,
  };
  const config: Partial<RaftConfig> = {
    electionTimeoutMin: 150, electionTimeoutMax: 300, heartbeatInterval: 40, maxBatch: 32, snapshotThreshold: 24,
    // Compact often (on entry count alone) so that snapshots and InstallSnapshot are exercised.
    snapshotLogRatio: 0,
  };
  if (opts.unsafeCommitQuorum !== undefined) config.unsafeCommitQuorum = opts.unsafeCommitQuorum;
  if (opts.unsafeAcceptRollback) config.unsafeAcceptRollback = true;

  const clusterId = rng.bytes(16);
  const members: Member[] = [];
  for (let id = 0; id < n; id++) {
    members.push({
      id, identity: identityFromSeed(id, rng.bytes(32)), storageKey: rng.bytes(32), disk: new SimDisk(q, rng.fork()),
      rng: rng.fork(), rate: faultsOn ? 0.9 + rng.float() * 0.2 : 1, offset: rng.int(0, 1_000_000),
      up: false, epoch: 0, boots: 0, sm: null, node: null, driver: null,
    });
  }
  const publicKeys = new Map(members.map((m) => [m.id, m.identity.publicKey] as const));
  const net = new SimNetwork(q, rng.fork(), (to, bytes) => {
    const m = members[to];
    if (m && m.up && m.driver) m.driver.receive(bytes);
  }, faultsOn ? STORM : CALM);

  const localNow = (m: Member): number => m.offset + q.now * m.rate;

  const start = (m: Member): void => {
    m.epoch++;
    m.boots++;
    const epoch = m.epoch;
    const who = `member ${m.id} boot ${m.boots}`;
    m.sm = workload.createStateMachine();
    const parts = createConsensusMember({
      stateMachine: m.sm,
      node: {
        identity: m.identity, members: publicKeys, clusterId, storageKey: m.storageKey, counter: m.disk.counter,
        rng: () => m.rng.u32(), boot: m.disk.bootState(), now: localNow(m), config,
      },
      env: {
        now: () => localNow(m),
        setTimer: (delay, fn) => q.schedule(delay / m.rate, () => { if (m.epoch === epoch && m.up) fn(); }),
        send: (to, bytes) => { if (m.epoch === epoch && m.up) net.send(m.id, to, bytes); },
        persist: (record, done) => m.disk.persist(record, done),
      },
      driver: {
        tickMs: 10, requestTimeoutMs: 3000,
        onOutput: (o) => {
          if (o.type === 'committed') checker.onApply(who, o.index, o.entry);
          else if (o.type === 'restored') checker.onRestored(who, o.index);
        },
      },
    });
    m.node = parts.node;
    if (m.node.status().learner) stats.learnerBoots++;
    m.driver = parts.driver;
    m.up = true;
    m.driver.start();
  };

  const crash = (m: Member): void => {
    if (!m.up) return;
    stats.crashes++;
    collectNodeStats(m);
    m.up = false;
    m.disk.crash();
    const d = m.driver;
    m.driver = null;
    m.node = null;
    m.sm = null;
    d?.stop();
  };

  const collectNodeStats = (m: Member): void => {
    if (!m.node) return;
    stats.elections += m.node.stats.elections;
    stats.snapshotsInstalled += m.node.stats.snapshotsInstalled;
    stats.droppedAuth += m.node.stats.droppedAuth;
    stats.droppedMalformed += m.node.stats.droppedMalformed;
  };

  const impaired = (): number => members.filter((m) => !m.up || (m.node?.status().learner ?? false)).length;

  // ---- client workload
  let pending = 0;
  let issued = 0;
  const submit = (entry: Uint8Array, onDone?: (ok: boolean) => void): void => {
    const m = rng.pick(members.filter((x) => x.up)) ;
    pending++;
    m.driver?.submit(entry, (err, v) => {
      pending--;
      if (err || !v) {
        stats.opsFailed++;
        onDone?.(false);
        return;
      }
      stats.opsOk++;
      const violation = workload.observe({ entry, index: v.index, result: v.result }, checker.committed);
      if (violation) checker.fail(violation);
      onDone?.(true);
    });
  };

  let t = 50;
  for (let i = 0; i < opts.ops; i++) {
    t += rng.int(2, 40);
    q.schedule(t, () => {
      issued++;
      if (members.some((m) => m.up)) submit(workload.nextOperation(rng, q.now));
    });
  }
  const activeEnd = t + 200;

  // ---- faults
  const scheduleFault = (): void => {
    q.schedule(rng.int(60, 500), () => {
      if (q.now >= activeEnd) return;
      injectFault();
      scheduleFault();
    });
  };
  const injectFault = (): void => {
    const kind = rng.int(0, 9);
    if (kind <= 3) {
      // crash-restart, sometimes with a rollback or a wiped disk
      if (impaired() >= f) return;
      const m = rng.pick(members.filter((x) => x.up));
      crash(m);
      if (kind === 3 || (kind === 2 && rng.chance(0.5))) {
        if (rng.chance(0.8) ? m.disk.rollback() : (m.disk.wipe(), true)) stats.rollbacks++;
      }
      q.schedule(rng.int(30, 1500), () => { if (!m.up) start(m); });
    } else if (kind <= 6) {
      stats.partitions++;
      const shuffled = members.map((m) => m.id);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [shuffled[i], shuffled[j]] = [shuffled[j] as number, shuffled[i] as number];
      }
      const cut = rng.int(1, n - 1);
      if (kind === 6) net.cutOneWay(shuffled[0] as number, shuffled[1] as number);
      else net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      q.schedule(rng.int(100, 2500), () => net.heal());
    } else if (kind === 7) {
      net.faults = { ...STORM, loss: 0.3, straggle: 0.1 };
      q.schedule(rng.int(100, 1500), () => { net.faults = STORM; });
    } else {
      const m = rng.pick(members);
      m.rate = 0.85 + rng.float() * 0.3;
    }
  };

  // ---- run
  for (const m of members) start(m);
  if (faultsOn) scheduleFault();

  const statuses = () => members.filter((m) => m.up && m.node).map((m) => (m.node as RaftNode).status());
  const runUntil = (stop: () => boolean, limit: number): boolean => {
    while (q.now < limit) {
      if (!q.runNext()) break;
      checker.checkLeaders(statuses());
      if (checker.violations.length > 0) return false;
      if (stop()) return true;
    }
    return stop();
  };

  runUntil(() => false, activeEnd);

  // ---- heal everything, then require progress within the bound
  const healStart = q.now;
  net.heal();
  net.faults = CALM;
  for (const m of members) if (!m.up) start(m);
  let probesOk = 0;
  const probe = (): void => {
    submit(workload.nextOperation(rng, q.now), (ok) => {
      if (ok) probesOk++;
      else if (q.now - healStart < healBound) q.schedule(50, probe);
    });
  };
  for (let i = 0; i < n; i++) q.schedule(1, probe);
  const converged = (): boolean => {
    if (pending > 0 || probesOk < n || issued < opts.ops) return false;
    const s = statuses();
    if (s.length < n || s.some((x) => x.learner)) return false;
    const applied = s[0]?.lastApplied ?? 0;
    return applied >= checker.maxCommitted && s.every((x) => x.lastApplied === applied);
  };
  const done = runUntil(converged, healStart + healBound);
  stats.healTimeMs = Math.round(q.now - healStart);
  if (checker.violations.length === 0 && !done) {
    const s = statuses();
    checker.fail(
      `no progress within ${healBound} ms after healing: pending=${pending} probesOk=${probesOk}/${n} ` +
        s.map((x) => `[${x.id} ${x.role} t${x.term} learner=${x.learner} applied=${x.lastApplied} commit=${x.commitIndex} last=${x.lastIndex}]`).join(' '),
    );
  }
  if (checker.violations.length === 0) {
    const snaps = members.map((m) => (m.sm as ReplicatedStateMachine).snapshot());
    const first = snaps[0] as Uint8Array;
    if (snaps.some((s) => s.length !== first.length || s.some((b, i) => b !== first[i]))) checker.fail('members did not converge to the same state');
    for (const v of workload.finalCheck(checker.committed, first)) checker.fail(v);
  }

  for (const m of members) collectNodeStats(m);
  stats.simTimeMs = Math.round(q.now);
  stats.committed = checker.committed.size;
  stats.delivered = net.delivered;
  stats.diskWrites = members.reduce((a, m) => a + m.disk.writes, 0);
  stats.diskBytes = members.reduce((a, m) => a + m.disk.bytesWritten, 0);
  let extra = (opts.members ?? 5) !== 5 ? ` --members ${n}` : '';
  if (workload.name !== 'vault') extra += ` --workload ${workload.name}`;
  if (!faultsOn) extra += ' --no-faults';
  return {
    seed: opts.seed,
    ok: checker.violations.length === 0,
    violations: checker.violations,
    stats,
    reproduce: `npm run sim -- --seed ${opts.seed} --ops ${opts.ops}${extra}`,
  };
}
