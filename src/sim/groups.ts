/**
 * The simulator with several replication groups over the same members (docs/groups.md): every
 * member runs one node, one record state and one record store per group, each group with its own
 * network links (one partition or loss storm hits all of them), disks and safety checker. A host
 * loop drives range transfers (moves to a neighbour, splits to an empty group, merges), through
 * whichever members lead, retrying each step, with an occasional cancel and replays of old
 * messages; clients follow WRONG_GROUP to the owner. Every existing fault kind is injected.
 *
 * Checked, besides each group's consensus invariants: after every event, no slot of the id space
 * is served by two groups (at each group's most advanced committed state); at the end, every slot
 * is served by exactly one group and every transfer has ended; over the whole run, the commands
 * of all groups, merged in commit order, replay to exactly what clients saw, within guess limits,
 * with every acknowledged registration kept, and each group's stores hold the replay's records of
 * the range it serves.
 */
import { identityFromSeed, type Identity } from '../trusted/consensus/auth.js';
import type { RaftDriver } from '../trusted/consensus/driver.js';
import type { RaftNode } from '../trusted/consensus/node.js';
import type { RaftConfig } from '../trusted/consensus/types.js';
import { createVaultMember } from '../trusted/member.js';
import { GroupKeys, openMessage } from '../trusted/groups/messages.js';
import { containsId, genesisRange, isEmpty, SLOTS, type KeyRange } from '../trusted/groups/range.js';
import { TransferCoordinator } from '../trusted/groups/transfer.js';
import { RecordBatcher, isNotLeader } from '../trusted/records/batcher.js';
import type { Command } from '../trusted/records/commands.js';
import { RecordState } from '../trusted/records/record-state.js';
import { MemoryRecordStore, type MemorySnapshot } from '../host/record-store/memory.js';
import { MemberRecords } from '../host/record-store/member-records.js';
import type { PeerExport } from '../host/record-store/store-writer.js';
import { isBkvError } from '../shared/errors.js';
import { SafetyChecker } from './checker.js';
import { SimDisk } from './disk.js';
import { EventQueue } from './events.js';
import { CALM, SimNetwork, type NetworkFaults } from './network.js';
import { Prng } from './prng.js';
import { injectStoreFault } from './store-faults.js';
import { CLOCK_SCALE, EPOCH_MS, SIM_STORAGE_KEY, VaultWorkload, hex, type StoreContent } from './vault-workload.js';
import { verifies } from './simulator.js';

export interface GroupSimOptions {
  seed: number;
  ops: number;
  members?: number;
  groups: number;
  faults?: boolean;
  workload?: VaultWorkload;
  healBoundMs?: number;
  /** TEST ONLY: groups keep serving ranges they are transferring out. */
  unsafeServeMoving?: boolean;
}

export interface GroupSimStats {
  simTimeMs: number;
  opsOk: number;
  opsFailed: number;
  wrongGroup: number;
  committed: number;
  crashes: number;
  rollbacks: number;
  partitions: number;
  storeFaults: number;
  /** Consensus frames the host also handed to another group's node of the same member (each must fail its MAC there). */
  misrouted: number;
  /** Of those, frames the wrong group's node accepted (must stay 0). */
  misroutedAccepted: number;
  transfersStarted: number;
  transfersDone: number;
  transfersAborted: number;
  /** Old transfer messages the host replayed (each must be refused). */
  replaysRefused: number;
  /** Members leading at least one group at the end (leaders spread when this is above 1). */
  leaderMembers: number;
  healTimeMs: number;
}

export interface GroupSimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: GroupSimStats;
  reproduce: string;
}

interface GNode {
  disk: SimDisk;
  rng: Prng;
  store: MemoryRecordStore;
  backups: MemorySnapshot[];
  sm: RecordState | null;
  node: RaftNode | null;
  driver: RaftDriver | null;
  records: MemberRecords | null;
  batcher: RecordBatcher | null;
  transfers: TransferCoordinator | null;
}

interface Member {
  id: number;
  identity: Identity;
  storageKey: Uint8Array;
  rate: number;
  offset: number;
  up: boolean;
  epoch: number;
  boots: number;
  nodes: GNode[];
  inflight: Set<() => void>;
}

interface OpenTransfer {
  source: number;
  dest: number;
  seq: number;
  range: KeyRange;
  cancel: boolean;
}

const STORM: NetworkFaults = { loss: 0.05, duplicate: 0.03, corrupt: 0.01, replay: 0.02, minDelay: 1, maxDelay: 20, straggle: 0.03 };

export async function runGroupSimulation(opts: GroupSimOptions): Promise<GroupSimResult> {
  const n = opts.members ?? 5;
  const G = opts.groups;
  const faultsOn = opts.faults ?? true;
  const w = opts.workload ?? new VaultWorkload();
  const healBound = opts.healBoundMs ?? 30_000;
  const f = Math.floor((n - 1) / 2);
  const rng = new Prng(opts.seed);
  const q = new EventQueue();
  const keys = new GroupKeys(SIM_STORAGE_KEY);
  // One empty group beyond the genesis count: the target of splits.
  const groupCount = G + 1;
  const checkers = Array.from({ length: groupCount }, () => new SafetyChecker());
  const firstCommit = Array.from({ length: groupCount }, () => new Map<number, number>());
  const stats: GroupSimStats = {
    simTimeMs: 0, opsOk: 0, opsFailed: 0, wrongGroup: 0, committed: 0, crashes: 0, rollbacks: 0, partitions: 0, storeFaults: 0, misrouted: 0, misroutedAccepted: 0,
    transfersStarted: 0, transfersDone: 0, transfersAborted: 0, replaysRefused: 0, leaderMembers: 0, healTimeMs: 0,
  };
  const debug = typeof process !== 'undefined' && process.env?.BKV_SIM_DEBUG === '1';
  const violations = (): string[] => checkers.flatMap((c) => c.violations);
  const fail = (v: string): void => checkers[0]!.fail(v);
  const wait = (ms: number): Promise<void> => new Promise((resolve) => { q.schedule(ms, resolve); });
  const config: Partial<RaftConfig> = { electionTimeoutMin: 150, electionTimeoutMax: 300, heartbeatInterval: 40, maxBatch: 32, snapshotThreshold: 24, snapshotLogRatio: 0 };

  // One fleet cluster id: the trusted assembly keys each group's node with its own (groups/cluster-id.ts).
  const clusterId = rng.bytes(16);
  const members: Member[] = [];
  for (let id = 0; id < n; id++) {
    members.push({
      id, identity: identityFromSeed(id, rng.bytes(32)), storageKey: rng.bytes(32),
      rate: faultsOn ? 0.9 + rng.float() * 0.2 : 1, offset: rng.int(0, 1_000_000), up: false, epoch: 0, boots: 0, inflight: new Set(),
      nodes: Array.from({ length: groupCount }, () => ({
        disk: new SimDisk(q, rng.fork()), rng: rng.fork(), store: new MemoryRecordStore(), backups: [],
        sm: null, node: null, driver: null, records: null, batcher: null, transfers: null,
      })),
    });
  }
  const publicKeys = new Map(members.map((m) => [m.id, m.identity.publicKey] as const));
  const misroute = rng.fork();
  const nets = Array.from({ length: groupCount }, (_, g) => new SimNetwork(q, rng.fork(), (to, bytes) => {
    const m = members[to];
    const d = m?.up ? m.nodes[g]!.driver : null;
    const own = m?.up ? m.nodes[g]!.node : null;
    const ownDrops = (): number => (own ? own.stats.droppedAuth + own.stats.droppedMalformed : 0);
    const ownBefore = ownDrops();
    if (d) d.receive(bytes);
    // A frame its own group's node dropped (the network corrupted it) says nothing about misrouting.
    const genuine = d !== null && own !== null && ownDrops() === ownBefore;
    // A hostile host also hands some frames to the member's node of another group: its MAC key is
    // that group's (groups/cluster-id.ts), so the frame must be dropped as unauthenticated there.
    if (faultsOn && m?.up && misroute.float() < 0.01) {
      const other = m.nodes[(g + 1 + misroute.int(0, groupCount - 2)) % groupCount]!;
      if (other.node && other.driver && genuine) {
        const before = other.node.stats.droppedAuth;
        other.driver.receive(bytes);
        stats.misrouted++;
        if (other.node.stats.droppedAuth === before) {
          stats.misroutedAccepted++;
          fail(`member ${m.id}: a frame of group ${g} was accepted by its node of another group`);
        }
      }
    }
  }, faultsOn ? STORM : CALM));
  const localNow = (m: Member): number => m.offset + q.now * m.rate;

  async function* peerExports(self: Member, g: number): AsyncGenerator<PeerExport> {
    const leader = self.nodes[g]!.node?.status().leaderId ?? null;
    const peers = members.filter((p) => p !== self && p.up).sort((a, b) => (a.id === leader ? -1 : b.id === leader ? 1 : a.id - b.id));
    for (const p of peers) {
      if (!p.up) continue;
      const e = await p.nodes[g]!.store.export(16);
      yield { peer: `member ${p.id}`, meta: e.meta, pages: e.pages };
    }
  }

  const startNode = (m: Member, g: number, epoch: number): void => {
    const nd = m.nodes[g]!;
    const who = `member ${m.id} boot ${m.boots}`;
    const sm = new RecordState({ id: g, groups: G, keys, ...(opts.unsafeServeMoving ? { unsafeServeMoving: true } : {}) });
    const records = new MemberRecords(nd.store, sm, {
      wait, peerExports: () => peerExports(m, g),
      ...(debug ? { onEvent: (line: string) => console.log(`t=${Math.round(q.now)} member ${m.id} group ${g}: ${line}`) } : {}),
    });
    const parts = createVaultMember({
      stateMachine: sm,
      node: { identity: m.identity, members: publicKeys, clusterId, storageKey: m.storageKey, counter: nd.disk.counter, rng: () => nd.rng.u32(), boot: nd.disk.bootState(), now: localNow(m), config: { ...config, preferredLeader: g % n } },
      env: {
        now: () => localNow(m),
        setTimer: (delay, fn) => q.schedule(delay / m.rate, () => { if (m.epoch === epoch && m.up) fn(); }),
        send: (to, bytes) => { if (m.epoch === epoch && m.up) nets[g]!.send(m.id, to, bytes); },
        persist: (record, done) => nd.disk.persist(record, done),
      },
      driver: {
        tickMs: 10, sparseTicks: true, requestTimeoutMs: 3000,
        onOutput: (o) => {
          if (o.type === 'committed') {
            checkers[g]!.onApply(who, o.index, o.entry);
            if (!firstCommit[g]!.has(o.index)) firstCommit[g]!.set(o.index, q.now);
          } else if (o.type === 'restored') checkers[g]!.onRestored(who, o.index);
          records.onOutput(o);
        },
      },
    });
    nd.sm = sm;
    nd.records = records;
    nd.node = parts.node;
    nd.batcher = new RecordBatcher(w.keys, sm, records.reader, parts.replicator, parts.leadership, {
      now: () => EPOCH_MS + Math.floor(localNow(m) * CLOCK_SCALE), random: (k) => nd.rng.bytes(k), wait,
    }, { onPropose: (entry, cmds) => w.onPropose(entry, cmds) });
    nd.transfers = new TransferCoordinator(sm, records.reader, parts.replicator, parts.leadership, wait);
    void records.open().then(() => {
      if (m.epoch !== epoch || !m.up) return;
      nd.driver = parts.driver;
      parts.driver.start();
    });
  };

  const start = (m: Member): void => {
    m.epoch++;
    m.boots++;
    m.up = true;
    for (let g = 0; g < groupCount; g++) startNode(m, g, m.epoch);
  };

  const crash = (m: Member): void => {
    if (!m.up) return;
    stats.crashes++;
    m.up = false;
    for (const nd of m.nodes) {
      nd.disk.crash();
      const d = nd.driver;
      nd.driver = null;
      nd.node = null;
      nd.sm = null;
      d?.stop();
      nd.records?.writer.close();
      nd.records = null;
      nd.batcher = null;
      nd.transfers = null;
    }
    const dropped = [...m.inflight];
    m.inflight.clear();
    for (const x of dropped) x();
  };

  const leaderOf = (g: number): GNode | null => {
    for (const m of members) {
      const nd = m.nodes[g]!;
      if (m.up && nd.node && nd.driver && nd.node.status().role === 'leader' && nd.transfers) return nd;
    }
    return null;
  };
  /** A group's most advanced committed state among the live members. */
  const latest = (g: number): RecordState | null => {
    let best: RecordState | null = null;
    for (const m of members) {
      const sm = m.up ? m.nodes[g]!.sm : null;
      if (sm && (!best || sm.lastApplied > best.lastApplied)) best = sm;
    }
    return best;
  };

  // ---- clients: a random group; WRONG_GROUP is followed to the owner, not-leader to the leader
  let pending = 0;
  let issued = 0;
  const execute = (cmd: Command, onDone?: (ok: boolean) => void): void => {
    pending++;
    const done = (ok: boolean): void => {
      pending--;
      if (ok) stats.opsOk++;
      else stats.opsFailed++;
      onDone?.(ok);
    };
    const attempt = (m: Member | undefined, g: number, hops: number): void => {
      const b = m?.up ? m.nodes[g]!.batcher : null;
      if (!m || !b) return done(false);
      let settled = false;
      const drop = (): void => {
        if (settled) return;
        settled = true;
        done(false);
      };
      m.inflight.add(drop);
      b.execute(cmd).then(
        (result) => {
          if (settled) return;
          settled = true;
          m.inflight.delete(drop);
          w.observe(cmd, result);
          done(true);
        },
        (err: unknown) => {
          if (settled) return;
          m.inflight.delete(drop);
          settled = true;
          if (hops >= 4) return done(false);
          if (isNotLeader(err)) {
            const hint = (err as { details: { leaderHint?: number | null } }).details.leaderHint ?? null;
            if (hint !== null && hint !== m.id) return attempt(members[hint], g, hops + 1);
          }
          if (isBkvError(err, 'WRONG_GROUP')) {
            stats.wrongGroup++;
            const owner = err.details.owner;
            if (typeof owner === 'number' && !err.details.moving) return attempt(rng.pick(members.filter((x) => x.up)), owner, hops + 1);
          }
          done(false);
        },
      );
    };
    const live = members.filter((x) => x.up);
    if (live.length === 0) return done(false);
    attempt(rng.pick(live), rng.int(0, groupCount - 1), 0);
  };

  let t = 50;
  for (let i = 0; i < opts.ops; i++) {
    t += rng.int(2, 40);
    q.schedule(t, () => {
      issued++;
      if (members.some((m) => m.up)) execute(w.nextCommand(rng, q.now));
    });
  }
  const activeEnd = t + 200;

  // ---- the host's transfer loop: one open transfer at a time, every step retried until it sticks
  let open: OpenTransfer | null = null;
  const oldMessages: Array<{ to: number; bytes: Uint8Array; kind: 'offer' | 'chunk' | 'reply' }> = [];
  const remember = (to: number, bytes: Uint8Array, kind: 'offer' | 'chunk' | 'reply'): void => {
    if (oldMessages.length < 32) oldMessages.push({ to, bytes, kind });
  };
  const pickTransfer = (): OpenTransfer | null => {
    const states = Array.from({ length: groupCount }, (_, g) => latest(g));
    const g = rng.int(0, groupCount - 1);
    const s = states[g];
    if (!s?.group || isEmpty(s.group.owned) || s.group.outgoing) return null;
    const owned = s.group.owned;
    // Neighbours: the group whose range ends where ours starts, or starts where ours ends; or an empty group.
    const options: Array<{ dest: number; side: 'low' | 'high' }> = [];
    states.forEach((o, d) => {
      if (d === g || !o?.group || o.group.incoming) return;
      const r = o.group.owned;
      if (isEmpty(r)) options.push({ dest: d, side: rng.chance(0.5) ? 'low' : 'high' });
      else if (r.end === owned.start) options.push({ dest: d, side: 'low' });
      else if (r.start === owned.end) options.push({ dest: d, side: 'high' });
    });
    if (options.length === 0) return null;
    const o = rng.pick(options);
    const size = owned.end - owned.start;
    const whole = size < 2 || (!isEmpty(states[o.dest]!.group!.owned) && rng.chance(0.2));
    const part = whole ? size : Math.max(1, Math.floor(size * (0.1 + rng.float() * 0.6)));
    const range = o.side === 'low' ? { start: owned.start, end: owned.start + part } : { start: owned.end - part, end: owned.end };
    return { source: g, dest: o.dest, seq: s.group.nextSeq, range, cancel: rng.chance(0.15) };
  };
  let stepping = false;
  let jobs = 0;
  const step = async (): Promise<void> => {
    if (!open) {
      // A TransferOut whose proposal timed out may still have committed: the host finds it in the state.
      for (let g = 0; g < groupCount && !open; g++) {
        const out = leaderOf(g)?.sm?.group?.outgoing;
        if (out) {
          open = { source: g, dest: out.dest, seq: out.seq, range: out.range, cancel: false };
          stats.transfersStarted++; // its start() had timed out
        }
      }
    }
    const tr = open;
    if (!tr) {
      if (q.now >= activeEnd || !rng.chance(0.3)) return;
      const next = pickTransfer();
      const src = next ? leaderOf(next.source) : null;
      if (!next || !src?.transfers) return;
      try {
        remember(next.dest, await src.transfers.start(next.range, next.dest), 'offer');
        open = { ...next, seq: src.sm?.group?.outgoing?.seq ?? next.seq };
        stats.transfersStarted++;
      } catch {
        // refused or not committed: maybe another time
      }
      return;
    }
    const src = leaderOf(tr.source);
    const dst = leaderOf(tr.dest);
    if (!src?.transfers || !dst?.transfers || !src.sm?.group || !dst.sm?.group) return;
    const sg = src.sm.group;
    const dg = dst.sm.group;
    if (!sg.outgoing || sg.outgoing.seq !== tr.seq) {
      // Ended (this leader applied the source's decision).
      if (sg.nextSeq > tr.seq) open = null;
      return;
    }
    const last = dg.lastFrom.get(tr.source);
    if (last && last.seq === tr.seq) {
      const reply = dst.transfers.reply(tr.source);
      remember(tr.source, reply, 'reply');
      const r = await src.transfers.finish(reply);
      if (r === 'done') stats.transfersDone++;
      else stats.transfersAborted++;
      open = null;
      return;
    }
    // The destination is busy sending (a start that timed out and committed later): give up on this one.
    if (dg.outgoing) tr.cancel = true;
    if (tr.cancel && (dg.outgoing || rng.chance(0.3))) {
      await dst.transfers.refuse(tr.source, tr.seq, src.transfers.cancel());
      return;
    }
    const inc = dg.incoming;
    if (!inc || inc.source !== tr.source || inc.seq !== tr.seq) {
      await dst.transfers.prepare(src.transfers.offer());
      return;
    }
    // Stream the range from the source leader's store, in chunks, then accept.
    // The host lists the range's ids from any member's store; the source leader's core proves each.
    const lister = rng.pick(members.filter((m) => m.up));
    const e = await lister.nodes[tr.source]!.store.export(64);
    let batch: Uint8Array[] = [];
    let index = 0;
    const send = async (): Promise<void> => {
      const c = await src.transfers!.chunk(index++, batch);
      remember(tr.dest, c, 'chunk');
      await dst.transfers!.receive(c);
      batch = [];
    };
    for await (const page of e.pages) {
      for (const r of page) {
        if (!containsId(tr.range, r.key)) continue;
        batch.push(r.key);
        if (batch.length >= 4) await send();
      }
    }
    if (batch.length > 0) await send();
    await dst.transfers.accept();
  };
  /** The host replays an old transfer message to a group's leader: it must be refused. */
  const replayOld = async (): Promise<void> => {
    const m = oldMessages.length ? rng.pick(oldMessages) : null;
    const ld = m ? leaderOf(m.to) : null;
    if (!m || !ld?.transfers || !ld.sm?.group) return;
    const g = ld.sm.group;
    const hdr = openMessage(keys, m.bytes, m.to);
    // Has the message's transfer ended, at the committed state of the group it goes to?
    const here = replays[m.to]!.sm.group!;
    const ended = m.kind === 'reply'
      ? here.nextSeq > hdr.seq && here.outgoing?.seq !== hdr.seq
      : (here.lastFrom.get(hdr.source)?.seq ?? 0) >= hdr.seq;
    let accepted = false;
    try {
      if (m.kind === 'offer') await ld.transfers.prepare(m.bytes);
      else if (m.kind === 'chunk') await ld.transfers.receive(m.bytes);
      else await ld.transfers.finish(m.bytes);
      accepted = true;
    } catch (e) {
      if (isBkvError(e, 'CONFLICT', 'VERIFICATION_FAILED')) stats.replaysRefused++;
    }
    // A message of a transfer that has ended must be refused and must not reopen it.
    if (ended && accepted) fail(`group ${g.id} accepted a replayed ${m.kind} of transfer ${hdr.source}/${hdr.seq}, which had ended`);
    const inc = ld.sm.group?.incoming;
    if (ended && inc && inc.source === hdr.source && inc.seq === hdr.seq) fail(`group ${g.id} reopened transfer ${hdr.source}/${hdr.seq} on a replayed ${m.kind}`);
  };
  const tick = (): void => {
    q.schedule(rng.int(40, 160), () => {
      if (!stepping) {
        stepping = true;
        const token = ++jobs;
        // A member that crashes mid-step leaves its promises pending: give up on the step after a while.
        q.schedule(8000, () => { if (jobs === token) stepping = false; });
        const job = faultsOn && rng.chance(0.1) ? replayOld() : step();
        void job.catch((e: unknown) => { if (debug) console.log(`t=${Math.round(q.now)} transfer step: ${String(e)}`); }).finally(() => { if (jobs === token) stepping = false; });
      }
      tick();
    });
  };

  // ---- faults (every kind of the single-group simulator, applied to all of a member's groups)
  const scheduleFault = (): void => {
    q.schedule(rng.int(60, 500), () => {
      if (q.now >= activeEnd) return;
      injectFault();
      scheduleFault();
    });
  };
  const impaired = (): number => members.filter((m) => !m.up || m.nodes.some((nd) => nd.node?.status().learner ?? false)).length;
  const injectFault = (): void => {
    const b = rng.pick(members);
    const bn = rng.pick(b.nodes);
    bn.backups.push(bn.store.snapshot());
    if (bn.backups.length > 3) bn.backups.shift();
    const kind = rng.int(0, 11);
    if (kind >= 10) return storeFault();
    if (kind <= 3) {
      if (impaired() >= f) return;
      const m = rng.pick(members.filter((x) => x.up));
      crash(m);
      if (kind === 3 || (kind === 2 && rng.chance(0.5))) {
        for (const nd of m.nodes) if (rng.chance(0.8) ? nd.disk.rollback() : (nd.disk.wipe(), true)) stats.rollbacks++;
      }
      if (rng.chance(0.25)) {
        const nd = rng.pick(m.nodes);
        stats.storeFaults++;
        const old = nd.backups[rng.int(0, Math.max(0, nd.backups.length - 1))];
        if (old && rng.chance(0.7)) nd.store.rollbackTo(old);
        else nd.store = new MemoryRecordStore();
        if (debug) console.log(`t=${Math.round(q.now)} member ${m.id} group ${m.nodes.indexOf(nd)}: store ${old ? 'rolled back or lost' : 'lost'} at a crash`);
      }
      q.schedule(rng.int(30, 1500), () => { if (!m.up) start(m); });
    } else if (kind <= 6) {
      stats.partitions++;
      const ids = members.map((m) => m.id);
      for (let i = ids.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
      }
      const cut = rng.int(1, n - 1);
      for (const net of nets) {
        if (kind === 6) net.cutOneWay(ids[0] as number, ids[1] as number);
        else net.partition(ids.slice(0, cut), ids.slice(cut));
      }
      q.schedule(rng.int(100, 2500), () => { for (const net of nets) net.heal(); });
    } else if (kind === 7) {
      for (const net of nets) net.faults = { ...STORM, loss: 0.3, straggle: 0.1 };
      q.schedule(rng.int(100, 1500), () => { for (const net of nets) net.faults = STORM; });
    } else {
      rng.pick(members).rate = 0.85 + rng.float() * 0.3;
    }
  };
  const storeFault = (): void => {
    const m = rng.pick(members.filter((x) => x.up));
    if (!m) return;
    const nd = rng.pick(m.nodes);
    if (!nd.records) return;
    const sub = injectStoreFault(rng, nd.store, nd.backups, w.recordIds());
    if (sub === null) return;
    stats.storeFaults++;
    if (debug) console.log(`t=${Math.round(q.now)} member ${m.id} group ${m.nodes.indexOf(nd)}: store fault ${sub}`);
  };

  /** Each group's committed log replayed as it becomes known: the group's state at its latest commit. */
  const replays = Array.from({ length: groupCount }, (_, g) => ({ sm: new RecordState({ id: g, groups: G, keys, ...(opts.unsafeServeMoving ? { unsafeServeMoving: true } : {}) }), at: 0 }));
  /** No slot is served by two groups at their latest commits. */
  const checkOwnership = (): void => {
    const served: Array<{ g: number; r: KeyRange }> = [];
    for (let g = 0; g < groupCount; g++) {
      const rp = replays[g]!;
      const log = checkers[g]!.committed;
      // Members apply in index order, so every entry below a known one is known (the no-op entries
      // of new terms never reach the state machine and are not in the log map).
      const max = checkers[g]!.maxCommitted;
      if (max > rp.at) {
        for (const i of [...log.keys()].filter((k) => k > rp.at).sort((a, b) => a - b)) rp.sm.apply(i, log.get(i)!);
        rp.at = max;
      }
      const s = rp.sm.group;
      if (s && !isEmpty(s.servedRange)) served.push({ g, r: s.servedRange });
    }
    for (let i = 0; i < served.length; i++) {
      for (let j = i + 1; j < served.length; j++) {
        const a = served[i]!;
        const c = served[j]!;
        if (a.r.start < c.r.end && c.r.start < a.r.end) fail(`groups ${a.g} and ${c.g} both serve slots [${Math.max(a.r.start, c.r.start)}, ${Math.min(a.r.end, c.r.end)})`);
      }
    }
  };

  // ---- run
  for (const m of members) start(m);
  if (faultsOn) scheduleFault();
  tick();
  const settle = (): Promise<void> => new Promise((resolve) => { setImmediate(resolve); });
  const runUntil = async (stop: () => boolean, limit: number): Promise<boolean> => {
    while (q.now < limit) {
      if (!q.runNext()) break;
      await settle();
      for (let g = 0; g < groupCount; g++) {
        checkers[g]!.checkLeaders(members.filter((m) => m.up && m.nodes[g]!.node).map((m) => m.nodes[g]!.node!.status()));
      }
      checkOwnership();
      if (violations().length > 0) return false;
      if (stop()) return true;
    }
    return stop();
  };
  await runUntil(() => false, activeEnd);

  const healStart = q.now;
  for (const net of nets) {
    net.heal();
    net.faults = CALM;
  }
  for (const m of members) if (!m.up) start(m);
  // While healing, verify every store that calls itself in step against its member's root every
  // 2 s (as the end-of-run scrub does): a store torn ahead of its group's last batch in a group
  // that gets no more batches (an empty one) is otherwise never found.
  const scrub = async (): Promise<void> => {
    for (const m of members) {
      for (const nd of m.nodes) {
        const sm = nd.sm;
        if (!m.up || !sm || nd.records?.status().state !== 'in-step') continue;
        const res = await nd.store.read(w.recordIds());
        if (!verifies(sm.root, res.reads) && sm.storeHealth().state !== 'corrupt') sm.markStoreCorrupt('a verifying read of every record did not match the committed root');
      }
    }
  };
  const scrubEvery = (): void => {
    q.schedule(2000, () => {
      void scrub();
      scrubEvery();
    });
  };
  scrubEvery();
  let probesOk = 0;
  const probe = (): void => {
    execute(w.nextCommand(rng, q.now), (ok) => {
      if (ok) probesOk++;
      else if (q.now - healStart < healBound) q.schedule(50, probe);
    });
  };
  for (let i = 0; i < n; i++) q.schedule(1, probe);
  const converged = (): boolean => {
    if (pending > 0 || probesOk < n || issued < opts.ops || open !== null) return false;
    if (replays.some((r) => r.sm.group!.outgoing || r.sm.group!.incoming)) return false;
    for (let g = 0; g < groupCount; g++) {
      const s = members.map((m) => m.nodes[g]!.node?.status());
      if (s.some((x) => !x || x.learner)) return false;
      const applied = s[0]!.lastApplied;
      if (!(applied >= checkers[g]!.maxCommitted && s.every((x) => x!.lastApplied === applied))) return false;
      if (!members.every((m) => {
        const st = m.nodes[g]!.records?.status();
        return st !== undefined && st.state === 'in-step' && st.storeBatch === st.coreBatch;
      })) return false;
    }
    return true;
  };
  let done = await runUntil(converged, healStart + healBound);
  if (done && violations().length === 0) {
    // As in the single-group simulator: verify every store once against its member's root, let the
    // writers repair what does not verify, and wait for them.
    for (const m of members) {
      for (const nd of m.nodes) {
        const sm = nd.sm as RecordState;
        const res = await nd.store.read(w.recordIds());
        if (!verifies(sm.root, res.reads)) sm.markStoreCorrupt('a verifying read of every record did not match the committed root');
      }
    }
    done = await runUntil(converged, q.now + healBound);
  }
  stats.healTimeMs = Math.round(q.now - healStart);
  if (violations().length === 0 && !done) {
    const groupsStatus = Array.from({ length: groupCount }, (_, g) => `g${g}: ` + members.map((m) => {
      const x = m.nodes[g]!.node?.status();
      const st = m.nodes[g]!.records?.status();
      return x ? `[${x.id} ${x.role} t${x.term} learner=${x.learner} applied=${x.lastApplied} commit=${x.commitIndex} last=${x.lastIndex} store=${st?.state} ${st?.storeBatch}/${st?.coreBatch}${st?.problem ? ` (${st.problem})` : ''}]` : '[down]';
    }).join(' ')).join(' | ');
    fail(`no progress within ${healBound} ms after healing: pending=${pending} probesOk=${probesOk}/${n} open transfer=${open ? `${(open as OpenTransfer).source}→${(open as OpenTransfer).dest}` : 'none'} ${groupsStatus}`);
  }
  if (violations().length === 0) {
    // Every slot served by exactly one group; each group's members agree.
    const finals = Array.from({ length: groupCount }, (_, g) => members[0]!.nodes[g]!.sm as RecordState);
    const ranges = finals.map((s, g) => ({ g, r: s.group!.servedRange })).filter((x) => !isEmpty(x.r)).sort((a, b) => a.r.start - b.r.start);
    let at = 0;
    for (const x of ranges) {
      if (x.r.start !== at) fail(`slots [${at}, ${x.r.start}) are served by no group at the end`);
      at = x.r.end;
    }
    if (at !== SLOTS) fail(`slots [${at}, ${SLOTS}) are served by no group at the end`);
    for (let g = 0; g < groupCount; g++) {
      const fg = finals[g]!.group!;
      if (debug) console.log(`group ${g}: replay at ${replays[g]!.at} (max ${checkers[g]!.maxCommitted}) out=${replays[g]!.sm.group!.outgoing?.seq} nextSeq=${replays[g]!.sm.group!.nextSeq}; member 0 applied ${finals[g]!.lastApplied} out=${fg.outgoing?.seq} nextSeq=${fg.nextSeq}`);
      if (fg.outgoing || fg.incoming) fail(`group ${g} still has a transfer open at the end (${fg.outgoing ? `out ${fg.outgoing.seq} to ${fg.outgoing.dest}` : ''}${fg.incoming ? `in ${fg.incoming.source}/${fg.incoming.seq}` : ''})`);
      const snap = finals[g]!.snapshot().subarray(10);
      for (const m of members) if (!(m.nodes[g]!.sm as RecordState).snapshot().subarray(10).every((b, i) => b === snap[i])) fail(`group ${g}'s members did not converge`);
    }
    // All groups' commands, merged in commit order, against what clients saw and what stores hold.
    const out: string[] = [];
    const merged: Array<{ at: number; g: number; index: number; cmd: Command }> = [];
    for (let g = 0; g < groupCount; g++) {
      const seq = w.commandSequence(checkers[g]!.committed, new RecordState({ id: g, groups: G, keys }), out);
      for (const s of seq) merged.push({ at: firstCommit[g]!.get(s.index) ?? 0, g, ...s });
    }
    merged.sort((a, b) => a.at - b.at || a.g - b.g || a.index - b.index);
    const stores: Array<{ who: string; content: StoreContent; owns: (k: string) => boolean }> = [];
    for (let g = 0; g < groupCount; g++) {
      const served = finals[g]!.group!.servedRange;
      for (const m of members) {
        const content: StoreContent = new Map();
        const e = await m.nodes[g]!.store.export(64);
        for await (const page of e.pages) for (const r of page) content.set(hex(r.key), r.value);
        // A group drops what it moved out (TransferDone) and what the chunks of a transfer it refused
        // brought (TransferRefuse): its store keeps nothing outside its range.
        const outside = [...content.keys()].filter((k) => !containsId(served, unhexPrefix(k))).length;
        if (outside > 0) fail(`member ${m.id}'s store of group ${g} keeps ${outside} records outside the range the group serves`);
        if (content.size !== finals[g]!.count) fail(`member ${m.id}'s store of group ${g} holds ${content.size} records, the group's state counts ${finals[g]!.count}`);
        stores.push({ who: `member ${m.id} group ${g}`, content, owns: (k) => containsId(served, unhexPrefix(k)) });
      }
    }
    for (const v of [...out, ...w.checkSequence(merged, stores)]) fail(v);
  }
  stats.leaderMembers = new Set(members.filter((m) => m.nodes.some((nd) => nd.node?.status().role === 'leader')).map((m) => m.id)).size;
  stats.simTimeMs = Math.round(q.now);
  stats.committed = checkers.reduce((a, c) => a + c.committed.size, 0);
  let extra = n !== 5 ? ` --members ${n}` : '';
  if (!faultsOn) extra += ' --no-faults';
  return {
    seed: opts.seed,
    ok: violations().length === 0,
    violations: violations(),
    stats,
    reproduce: `npm run sim -- --groups ${G} --seed ${opts.seed} --ops ${opts.ops}${extra}`,
  };
}

/** The first 4 bytes of a hex id, as an id (enough for the slot). */
function unhexPrefix(k: string): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 4; i++) b[i] = parseInt(k.slice(2 * i, 2 * i + 2), 16);
  return b;
}
