/**
 * The deterministic simulator: real consensus code (RaftNode + RaftDriver) on a simulated network,
 * disk and clock, all driven by one seeded PRNG. Faults: loss, duplication, delay/reordering,
 * corruption, replay and misdirection, partitions (two-way and one-way), crash-restarts (losing
 * unconfirmed writes), disk rollbacks and wipes (the monotonic counter stays), clock-rate skew.
 * With the vault workload every member runs the production path (record state, store writer,
 * leader's batcher) over an in-memory record store, with store faults: rollbacks, losses, swapped,
 * deleted and forged rows, torn writes.
 */
import { identityFromSeed } from '../trusted/consensus/auth.js';
import type { Identity } from '../trusted/consensus/auth.js';
import type { RaftDriver } from '../trusted/consensus/driver.js';
import type { RaftNode } from '../trusted/consensus/node.js';
import { createConsensusMember, createVaultMember } from '../trusted/member.js';
import { RecordBatcher, isNotLeader } from '../trusted/records/batcher.js';
import type { Command } from '../trusted/records/commands.js';
import { RecordState } from '../trusted/records/record-state.js';
import { MemoryRecordStore, type MemorySnapshot } from '../host/record-store/memory.js';
import { MemberRecords } from '../host/record-store/member-records.js';
import type { PeerExport } from '../host/record-store/store-writer.js';
import type { RaftConfig } from '../trusted/consensus/types.js';
import type { ReplicatedStateMachine } from '../trusted/core/replication.js';
import { equalBytes } from '../shared/bytes.js';
import { valueHash, verifyProof } from '../shared/record-tree/index.js';
import { SafetyChecker } from './checker.js';
import { SimDisk } from './disk.js';
import { EventQueue } from './events.js';
import { CALM, SimNetwork } from './network.js';
import type { NetworkFaults } from './network.js';
import { Prng } from './prng.js';
import { injectStoreFault } from './store-faults.js';
import { CLOCK_SCALE, EPOCH_MS, VaultWorkload, hex, type StoreContent } from './vault-workload.js';
import { EscrowWorkload } from './workload.js';
import type { SimWorkload } from './workload.js';

export type WorkloadName = 'vault' | 'escrow';

export function makeWorkload(name: WorkloadName): SimWorkload | VaultWorkload {
  return name === 'escrow' ? new EscrowWorkload() : new VaultWorkload();
}

export interface SimOptions {
  seed: number;
  ops: number;
  members?: number;
  /** Inject faults (default true). */
  faults?: boolean;
  /** The workload: a name, or an instance (default: the real vault state machine). */
  workload?: WorkloadName | SimWorkload | VaultWorkload;
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
  /** Faults injected into members' record stores (rollbacks, losses, swapped, deleted, forged and torn rows). */
  storeFaults: number;
  /** Stores the members' writers replaced with a verified copy from a peer. */
  storeRepairs: number;
  /** Store faults on followers found only by the end-of-run verification (no read touched them). */
  storeScrubbed: number;
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
  /** Vault workload: the host's record store (survives crashes), its writer, and the leader's batcher. */
  store: MemoryRecordStore;
  backups: MemorySnapshot[];
  records: MemberRecords | null;
  batcher: RecordBatcher | null;
  /** Client requests in flight at this member: a crash fails them (the connection drops). */
  inflight: Set<() => void>;
}

const STORM: NetworkFaults = { loss: 0.05, duplicate: 0.03, corrupt: 0.01, replay: 0.02, minDelay: 1, maxDelay: 20, straggle: 0.03 };

export async function runSimulation(opts: SimOptions): Promise<SimResult> {
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
    storeFaults: 0, storeRepairs: 0, storeScrubbed: 0,
  };
  const vault = workload instanceof VaultWorkload ? workload : null;
  const sim = workload instanceof VaultWorkload ? null : workload;
  /** Host timers for the batcher and the store writer: simulated time. */
  const wait = (ms: number): Promise<void> => new Promise((resolve) => { q.schedule(ms, resolve); });
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
      store: new MemoryRecordStore(), backups: [], records: null, batcher: null, inflight: new Set(),
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
    if (vault) {
      startVault(m, epoch, who);
      return;
    }
    m.sm = (sim as SimWorkload).createStateMachine();
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
        tickMs: 10, sparseTicks: true, requestTimeoutMs: 3000,
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

  const nodeOptions = (m: Member) => ({
    identity: m.identity, members: publicKeys, clusterId, storageKey: m.storageKey, counter: m.disk.counter,
    rng: () => m.rng.u32(), boot: m.disk.bootState(), now: localNow(m), config,
  });

  /** Peers' stores, exported in-process (the live members' `GET /v1/store/export`), leader first. */
  async function* peerExports(self: Member): AsyncGenerator<PeerExport> {
    const leader = self.node?.status().leaderId ?? null;
    const peers = members.filter((p) => p !== self && p.up).sort((a, b) => (a.id === leader ? -1 : b.id === leader ? 1 : a.id - b.id));
    for (const p of peers) {
      if (!p.up) continue;
      const e = await p.store.export(16);
      yield { peer: `member ${p.id}`, meta: e.meta, pages: e.pages };
    }
  }

  const startVault = (m: Member, epoch: number, who: string): void => {
    const w = vault as VaultWorkload;
    const sm = new RecordState();
    m.sm = sm;
    // Followers write their stores in groups, as member processes do (a smaller delay, in simulated ms).
    const group = { maxDelayMs: 30, maxBatches: 8, when: () => m.node?.status().role !== 'leader' };
    const records = new MemberRecords(m.store, sm, { wait, peerExports: () => peerExports(m), group });
    const parts = createVaultMember({
      stateMachine: sm,
      node: nodeOptions(m),
      env: {
        now: () => localNow(m),
        setTimer: (delay, fn) => q.schedule(delay / m.rate, () => { if (m.epoch === epoch && m.up) fn(); }),
        send: (to, bytes) => { if (m.epoch === epoch && m.up) net.send(m.id, to, bytes); },
        persist: (record, done) => m.disk.persist(record, done),
      },
      driver: {
        tickMs: 10, sparseTicks: true, requestTimeoutMs: 3000,
        onOutput: (o) => {
          if (o.type === 'committed') checker.onApply(who, o.index, o.entry);
          else if (o.type === 'restored') checker.onRestored(who, o.index);
          records.onOutput(o);
        },
      },
    });
    m.records = records;
    m.node = parts.node;
    if (m.node.status().learner) stats.learnerBoots++;
    m.batcher = new RecordBatcher(w.keys, sm, records.reader, parts.replicator, parts.leadership, {
      now: () => EPOCH_MS + Math.floor(localNow(m) * CLOCK_SCALE),
      random: (k) => m.rng.bytes(k),
      wait,
    }, { onPropose: (entry, cmds) => w.onPropose(entry, cmds) });
    m.up = true;
    // The host opens its store before the member starts taking part.
    void records.open().then(() => {
      if (m.epoch !== epoch || !m.up) return;
      m.driver = parts.driver;
      parts.driver.start();
    });
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
    if (m.records) {
      stats.storeRepairs += m.records.writer.stats.repairs;
      m.records.writer.close();
    }
    m.records = null;
    m.batcher = null;
    const dropped = [...m.inflight];
    m.inflight.clear();
    for (const fail of dropped) fail();
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
  /** A client sends a command to a member; a `not-leader` refusal is retried at the hinted leader (at most 3 hops). */
  const execute = (cmd: Command, onDone?: (ok: boolean) => void): void => {
    const w = vault as VaultWorkload;
    pending++;
    const attempt = (m: Member | undefined, hops: number): void => {
      const b = m?.up ? m.batcher : null;
      if (!m || !b) {
        pending--;
        stats.opsFailed++;
        onDone?.(false);
        return;
      }
      let settled = false;
      const fail = (): void => {
        if (settled) return;
        settled = true;
        pending--;
        stats.opsFailed++;
        onDone?.(false);
      };
      m.inflight.add(fail);
      b.execute(cmd).then(
        (result) => {
          if (settled) return;
          settled = true;
          m.inflight.delete(fail);
          pending--;
          stats.opsOk++;
          w.observe(cmd, result);
          onDone?.(true);
        },
        (err: unknown) => {
          if (settled) return;
          m.inflight.delete(fail);
          const hint = isNotLeader(err) ? ((err as { details: { leaderHint?: number | null } }).details.leaderHint ?? null) : null;
          if (hint !== null && hint !== m?.id && hops < 3) {
            settled = true;
            attempt(members[hint], hops + 1);
            return;
          }
          fail();
        },
      );
    };
    attempt(rng.pick(members.filter((x) => x.up)), 0);
  };

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
      const violation = (sim as SimWorkload).observe({ entry, index: v.index, result: v.result }, checker.committed);
      if (violation) checker.fail(violation);
      onDone?.(true);
    });
  };

  let t = 50;
  for (let i = 0; i < opts.ops; i++) {
    t += rng.int(2, 40);
    q.schedule(t, () => {
      issued++;
      if (!members.some((m) => m.up)) return;
      if (vault) execute(vault.nextCommand(rng, q.now));
      else submit((sim as SimWorkload).nextOperation(rng, q.now));
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
    if (vault) {
      // The host keeps an occasional copy of its database (what a store rollback restores).
      const b = rng.pick(members);
      b.backups.push(b.store.snapshot());
      if (b.backups.length > 3) b.backups.shift();
    }
    const kind = rng.int(0, vault ? 11 : 9);
    if (kind >= 10) {
      storeFault();
      return;
    }
    if (kind <= 3) {
      // crash-restart, sometimes with a rollback or a wiped disk; the record store survives a crash
      // unless the fault says otherwise (restored from an old backup, or lost)
      if (impaired() >= f) return;
      const m = rng.pick(members.filter((x) => x.up));
      crash(m);
      if (kind === 3 || (kind === 2 && rng.chance(0.5))) {
        if (rng.chance(0.8) ? m.disk.rollback() : (m.disk.wipe(), true)) stats.rollbacks++;
      }
      if (vault && rng.chance(0.25)) {
        stats.storeFaults++;
        const old = m.backups[rng.int(0, Math.max(0, m.backups.length - 1))];
        if (old && rng.chance(0.7)) m.store.rollbackTo(old);
        else m.store = new MemoryRecordStore();
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

  /** What a hostile or broken host does to a running member's store. */
  const storeFault = (): void => {
    const w = vault as VaultWorkload;
    const m = rng.pick(members.filter((x) => x.up && x.records));
    if (!m) return;
    if (injectStoreFault(rng, m.store, m.backups, w.recordIds()) !== null) stats.storeFaults++;
  };

  // ---- run
  for (const m of members) start(m);
  if (faultsOn) scheduleFault();

  const statuses = () => members.filter((m) => m.up && m.node).map((m) => (m.node as RaftNode).status());
  // Store and batcher work is promise-based: after each event, let every promise it started settle
  // (memory stores do no I/O, so the order is fixed by the event order and the run stays deterministic).
  const settle = (): Promise<void> => new Promise((resolve) => { setImmediate(resolve); });
  const runUntil = async (stop: () => boolean, limit: number): Promise<boolean> => {
    while (q.now < limit) {
      if (!q.runNext()) break;
      if (vault) await settle();
      checker.checkLeaders(statuses());
      if (checker.violations.length > 0) return false;
      if (stop()) return true;
    }
    return stop();
  };

  await runUntil(() => false, activeEnd);

  // ---- heal everything, then require progress within the bound
  const healStart = q.now;
  net.heal();
  net.faults = CALM;
  for (const m of members) if (!m.up) start(m);
  let probesOk = 0;
  const probe = (): void => {
    const onDone = (ok: boolean): void => {
      if (ok) probesOk++;
      else if (q.now - healStart < healBound) q.schedule(50, probe);
    };
    if (vault) execute(vault.nextCommand(rng, q.now), onDone);
    else submit((sim as SimWorkload).nextOperation(rng, q.now), onDone);
  };
  for (let i = 0; i < n; i++) q.schedule(1, probe);
  const converged = (): boolean => {
    if (pending > 0 || probesOk < n || issued < opts.ops) return false;
    const s = statuses();
    if (s.length < n || s.some((x) => x.learner)) return false;
    const applied = s[0]?.lastApplied ?? 0;
    if (!(applied >= checker.maxCommitted && s.every((x) => x.lastApplied === applied))) return false;
    // Vault: every store is in step with its member's state.
    return !vault || members.every((m) => {
      const st = m.records?.status();
      return st !== undefined && st.state === 'in-step' && st.storeBatch === st.coreBatch;
    });
  };
  let done = await runUntil(converged, healStart + healBound);
  if (vault && done && checker.violations.length === 0) {
    // A fault in a follower's store is found when that member next reads it as leader. Verify each
    // store once against its member's committed root (as a read would), let the writers repair
    // what does not verify, and wait for them.
    const ids = vault.recordIds();
    for (const m of members) {
      const sm = m.sm as RecordState;
      const res = await m.store.read(ids);
      if (!verifies(sm.root, res.reads)) {
        stats.storeScrubbed++;
        sm.markStoreCorrupt('a verifying read of every record did not match the committed root');
      }
    }
    done = await runUntil(converged, q.now + healBound);
  }
  stats.healTimeMs = Math.round(q.now - healStart);
  if (checker.violations.length === 0 && !done) {
    const s = statuses();
    checker.fail(
      `no progress within ${healBound} ms after healing: pending=${pending} probesOk=${probesOk}/${n} ` +
        s.map((x) => `[${x.id} ${x.role} t${x.term} learner=${x.learner} applied=${x.lastApplied} commit=${x.commitIndex} last=${x.lastIndex}${storeStatus(members[x.id])}]`).join(' '),
    );
  }
  if (checker.violations.length === 0 && vault) {
    const first = members[0]?.sm as RecordState;
    if (members.some((m) => !equalBytes((m.sm as RecordState).root, first.root) || (m.sm as RecordState).count !== first.count)) {
      checker.fail('members did not converge to the same root and count');
    }
    const stores: Array<{ who: string; content: StoreContent }> = [];
    for (const m of members) {
      const meta = await m.store.meta();
      if (!equalBytes(meta.root, first.root)) checker.fail(`member ${m.id}'s record store root differs from the committed root after repair`);
      const content: StoreContent = new Map();
      const e = await m.store.export(64);
      for await (const page of e.pages) for (const r of page) content.set(hex(r.key), r.value);
      stores.push({ who: `member ${m.id}`, content });
    }
    for (const v of vault.finalCheck(checker.committed, stores)) checker.fail(v);
  } else if (checker.violations.length === 0) {
    const snaps = members.map((m) => (m.sm as ReplicatedStateMachine).snapshot());
    const first = snaps[0] as Uint8Array;
    if (snaps.some((s) => s.length !== first.length || s.some((b, i) => b !== first[i]))) checker.fail('members did not converge to the same state');
    for (const v of (sim as SimWorkload).finalCheck(checker.committed, first)) checker.fail(v);
  }
  for (const m of members) if (m.records) stats.storeRepairs += m.records.writer.stats.repairs;

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

/** Every read verifies against `root` (the batcher's own check: proof, then the value's hash). */
export function verifies(root: Uint8Array, reads: Array<{ key: Uint8Array; value: Uint8Array | null; proof: Uint8Array }>): boolean {
  for (const r of reads) {
    try {
      const vh = verifyProof(root, r.key, r.proof);
      if (vh === null ? r.value !== null : r.value === null || !equalBytes(valueHash(r.value), vh)) return false;
    } catch {
      return false;
    }
  }
  return true;
}

function storeStatus(m: { records: MemberRecords | null } | undefined): string {
  const st = m?.records?.status();
  return st ? ` store=${st.state} at ${st.storeBatch}/${st.coreBatch}${st.problem ? ` (${st.problem})` : ''}` : '';
}
