/**
 * RaftNode: a Raft member as a pure, deterministic state machine. The host feeds inputs
 * (ticks, received bytes, proposals, read requests, persistence confirmations) through `step`
 * and carries out the returned outputs. Nothing here reads a clock, draws ambient randomness or
 * performs I/O.
 *
 * Durability rule: every message whose meaning depends on persistent state (votes, acks,
 * term changes, rejoin answers) is withheld inside the node until a `persist` output covering
 * that state has been confirmed with `persisted(token)`. Confirmation increments the monotonic
 * counter that the sealed state is bound to, so a host that lies about durability is caught as
 * a rollback on the next boot.
 */
import type { ReplicatedStateMachine } from '../core/replication.js';
import { AuthError, PeerAuth } from './auth.js';
import type { HmacSha256, Identity } from './auth.js';
import { ConsensusDecodeError } from './codec.js';
import type { MonotonicCounter } from './counter.js';
import { RaftLog } from './log.js';
import { ProgressTracker, type PeerProgress } from './progress.js';
import { newDurability, type Durability } from './durability.js';
import { newReadIndexState, type PendingRead, type ReadIndexState } from './read-index.js';
import { MsgType, decodeBody, encodeBody } from './messages.js';
import type {
  AppendMsg, AppendRespMsg, ForwardMsg, Message, ReadReqMsg, ReadRespMsg, RejoinInfoMsg, SnapshotMsg,
  TimeoutNowMsg, VoteMsg, VoteRespMsg,
} from './messages.js';
import {
  SealedStateError, ZERO_DIGEST, nobleSealCrypto, openHardState, openSnapshot, rebuildLog, sealFrame, sealHardState, sealSnapshot, snapshotDigest,
} from './sealed-state.js';
import type { BootState, HardState, PersistRecord, SealCrypto, SnapshotMeta } from './sealed-state.js';
import { DEFAULT_CONFIG, EntryKind, VOTE_ABSTAIN } from './types.js';
import type { LogEntry, MemberId, NodeInput, NodeOutput, NodeStatus, RaftConfig, Role } from './types.js';

export interface RaftNodeOptions {
  identity: Identity;
  /** Public identity keys of every member, including this one. Fixed membership, N odd, 3-9 (1 for tests). */
  members: ReadonlyMap<MemberId, Uint8Array>;
  clusterId: Uint8Array;
  /** 32-byte AES key sealing this member's persistent state. */
  storageKey: Uint8Array;
  counter: MonotonicCounter;
  /** Injected randomness: uniform 32-bit unsigned integers (a CSPRNG inside a real member). */
  rng: () => number;
  stateMachine: ReplicatedStateMachine;
  /** What the host found on disk (`EMPTY_BOOT` for a new member). */
  boot: BootState;
  now: number;
  config?: Partial<RaftConfig>;
  /** Optional native HMAC-SHA256 for message authentication (same result as the default). */
  hmacSha256?: HmacSha256;
  /** Optional native AES-GCM and SHA-256 for sealing persistent state (same bytes as the default). */
  sealCrypto?: SealCrypto;
}

export interface NodeStats {
  droppedMalformed: number;
  droppedAuth: number;
  elections: number;
  /** Times this member, leading, handed leadership to the group's preferred leader. */
  handOvers: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
  /** Successful append answers merged into a later one held back for the same write (`send`). */
  mergedAnswers: number;
}

const FORWARD_WINDOW = 4096;
/** A snapshot sent to a peer is not resent for this many election timeouts while it installs. */
const SNAPSHOT_RETRY_TIMEOUTS = 4;
/** Bytes a log entry costs besides its data (frame header, entry header, GCM tag, record header). */
const ENTRY_OVERHEAD = 100;

export class RaftNode {
  readonly id: MemberId;
  readonly members: readonly MemberId[];
  readonly peers: readonly MemberId[];
  readonly incarnation: number;
  readonly stats: NodeStats = { droppedMalformed: 0, droppedAuth: 0, elections: 0, handOvers: 0, snapshotsSent: 0, snapshotsInstalled: 0, mergedAnswers: 0 };
  bootNote = '';

  private readonly cfg: RaftConfig;
  private readonly majority: number;
  private readonly commitQuorum: number;
  private readonly auth: PeerAuth;
  private readonly counter: MonotonicCounter;
  private readonly storageKey: Uint8Array;
  private readonly sc: SealCrypto;
  private readonly rng: () => number;
  private readonly sm: ReplicatedStateMachine;

  // persistent
  private term = 0;
  private votedFor: number | null = null;
  private learner = false;
  private log = RaftLog.empty();

  // volatile
  private role: Role = 'follower';
  private leaderId: MemberId | null = null;
  private commitIndex = 0;
  /** The highest commit index a leader has told this member (how far behind it is, for status). */
  private leaderCommit = 0;
  private lastApplied = 0;
  /** Bytes of the entries applied since the snapshot (for the compaction policy). */
  private appliedBytes = 0;
  private now: number;
  private electionDeadline = 0;
  private lastLeaderContact = -Infinity;
  /** Leader: not before this time may it hand leadership to the preferred leader (TimeoutNow). */
  private transferDue = 0;
  private votes = new Set<MemberId>();

  // leader
  /** Per-peer replication progress (next, match, voter, last ack, snapshot sent, read acks). */
  private progress = new ProgressTracker();
  /** Linearizable reads: the read sequence, reads being confirmed, forwarded and waiting reads. */
  private reads: ReadIndexState = newReadIndexState();
  private heartbeatDue = 0;
  private quorumCheckAt = 0;
  private forwardSeen = new Map<string, { hwm: number; seen: Set<number> }>();
  private needsBroadcast = false;
  /** The commit index moved and some peer has not been sent it yet: tell it at the next tick. */
  private commitNotify = false;

  // follower / any member
  private forwardBuffer: Array<{ requestId: number; data: Uint8Array }> = [];

  // learner rejoin
  private probeNonce = 0;
  private probeReplies = new Map<MemberId, number>();
  private rejoinTerm: number | null = null;
  private probeDue = 0;

  /** Durability bookkeeping: state versions written and durable, frames on disk, held-back messages. */
  private dur: Durability = newDurability();

  private out: NodeOutput[] = [];

  constructor(opts: RaftNodeOptions) {
    this.cfg = { ...DEFAULT_CONFIG, ...opts.config };
    this.id = opts.identity.id;
    this.members = [...opts.members.keys()].sort((a, b) => a - b);
    if (!this.members.includes(this.id)) throw new RangeError('identity is not a member');
    if (this.members.length % 2 === 0 || this.members.length > 9) throw new RangeError('membership must be odd and at most 9');
    this.peers = this.members.filter((m) => m !== this.id);
    this.majority = Math.floor(this.members.length / 2) + 1;
    this.commitQuorum = this.cfg.unsafeCommitQuorum ?? this.majority;
    this.auth = new PeerAuth(opts.identity, opts.members, opts.clusterId, opts.hmacSha256);
    this.counter = opts.counter;
    this.storageKey = opts.storageKey;
    this.sc = opts.sealCrypto ?? nobleSealCrypto;
    this.rng = opts.rng;
    this.sm = opts.stateMachine;
    this.now = opts.now;
    this.incarnation = this.rng() >>> 0;
    this.boot(opts.boot);
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- boot and rollback defence

  private boot(disk: BootState): void {
    const c = this.counter.read();
    if (disk.hardState === null) {
      if (c === 0) {
        this.bootNote = 'fresh member';
        return;
      }
      return this.startAsLearner(`state missing while counter is ${c}`);
    }
    let hs: HardState;
    let snapshot: SnapshotMeta;
    let entries: LogEntry[];
    try {
      const opened = openHardState(this.storageKey, this.id, disk.hardState, this.sc);
      if (opened.stamp !== c && !this.cfg.unsafeAcceptRollback) {
        return this.startAsLearner(`rollback detected: sealed stamp ${opened.stamp}, counter ${c}`);
      }
      hs = opened.state;
      if (hs.snapshot.index === 0) {
        if (hs.snapshot.term !== 0) throw new SealedStateError('empty snapshot with a term');
        snapshot = { index: 0, term: 0, data: new Uint8Array(0) };
      } else {
        if (disk.snapshot === null) throw new SealedStateError(`snapshot at ${hs.snapshot.index} is missing`);
        snapshot = openSnapshot(this.storageKey, this.id, disk.snapshot, hs.snapshot, this.sc);
      }
      entries = rebuildLog(this.storageKey, this.id, hs, disk.logFrames, this.sc);
    } catch (e) {
      if (e instanceof SealedStateError) return this.startAsLearner(e.message);
      throw e;
    }
    this.term = hs.term;
    this.votedFor = hs.votedFor;
    this.learner = hs.learner;
    this.log = new RaftLog(snapshot, entries);
    if (snapshot.index > 0) this.sm.restore(snapshot.data);
    this.commitIndex = this.lastApplied = snapshot.index;
    this.dur.stateVersion = this.dur.writtenVersion = this.dur.durableVersion = 1;
    this.dur.durableLastIndex = this.dur.diskIndex = this.log.lastIndex;
    this.dur.snapRef = hs.snapshot;
    this.bootNote = hs.learner ? 'resumed as learner' : 'resumed';
    if (hs.learner) this.startProbe();
  }

  /** Discards untrusted state: no vote, no log; catch up from the majority before voting again. */
  private startAsLearner(note: string): void {
    this.bootNote = note;
    this.term = 0;
    this.votedFor = VOTE_ABSTAIN;
    this.learner = true;
    this.log = RaftLog.empty();
    this.dur.diskIndex = 0;
    this.dur.truncateFrom = 1; // whatever frames the host still has are of no use
    this.dur.snapshotDirty = false;
    this.dur.snapRef = { index: 0, term: 0, digest: ZERO_DIGEST };
    this.dirty();
    this.startProbe();
  }

  private startProbe(): void {
    this.probeNonce = this.rng() * 0x200000 + (this.rng() & 0x1fffff);
    this.probeReplies.clear();
    this.rejoinTerm = null;
    this.probeDue = this.now;
  }

  // ---------------------------------------------------------------- public API

  status(): NodeStatus {
    return {
      id: this.id, role: this.role, term: this.term, learner: this.learner, leaderId: this.leaderId,
      commitIndex: this.commitIndex, leaderCommit: this.role === 'leader' ? this.commitIndex : Math.max(this.leaderCommit, this.commitIndex),
      lastApplied: this.lastApplied, lastIndex: this.log.lastIndex,
      snapshotIndex: this.log.snapshot.index, bootNote: this.bootNote,
    };
  }

  step(input: NodeInput | readonly NodeInput[]): NodeOutput[] {
    this.out = [];
    const inputs = Array.isArray(input) ? (input as readonly NodeInput[]) : [input as NodeInput];
    for (const i of inputs) this.handle(i);
    this.flush();
    const out = this.out;
    this.out = [];
    return out;
  }

  private handle(i: NodeInput): void {
    switch (i.type) {
      case 'tick':
        this.now = Math.max(this.now, i.now);
        return this.onTick();
      case 'clock':
        this.now = Math.max(this.now, i.now);
        return;
      case 'receive':
        return this.onReceive(i.bytes);
      case 'propose':
        return this.onPropose(i.requestId, i.entry);
      case 'readIndex':
        return this.onReadIndex(i.requestId);
      case 'persisted':
        return this.onPersisted(i.token);
    }
  }

  // ---------------------------------------------------------------- durability and sending

  private dirty(): void {
    this.dur.stateVersion++;
  }

  private send(to: MemberId, msg: Message, gated = true): void {
    if (!gated || this.dur.stateVersion <= this.dur.durableVersion) {
      this.out.push({ type: 'send', to, bytes: this.auth.seal(to, encodeBody(msg)) });
      return;
    }
    // A successful append answer waiting for the same write as the previous message held for that
    // leader, itself a successful answer of this term, replaces it: one answer with the higher
    // match and read sequence says what both said (the leader takes the maximum of each), and
    // costs one MAC, one frame and one step of the leader instead of several. An answer already
    // covered by a write in flight is not held back for a later one.
    if (msg.t === MsgType.AppendResp && msg.success) {
      const ob = this.dur.outbox;
      let k = ob.length - 1;
      while (k >= 0 && ob[k]!.to !== to) k--;
      const prev = k >= 0 ? ob[k]! : null;
      if (prev && prev.version > this.dur.writtenVersion && prev.msg.t === MsgType.AppendResp && prev.msg.success && prev.msg.term === msg.term) {
        ob[k] = { version: this.dur.stateVersion, to, msg: { ...msg, match: Math.max(msg.match, prev.msg.match), readSeq: Math.max(msg.readSeq, prev.msg.readSeq) } };
        this.stats.mergedAnswers++;
        return;
      }
    }
    this.dur.outbox.push({ version: this.dur.stateVersion, to, msg });
  }

  private flush(): void {
    if (this.role === 'leader' && this.needsBroadcast) {
      this.needsBroadcast = false;
      for (const p of this.peers) this.sendAppend(p);
    }
    if (this.forwardBuffer.length > 0 && this.leaderId !== null && this.leaderId !== this.id) {
      const items = this.forwardBuffer.splice(0, this.forwardBuffer.length);
      this.send(this.leaderId, { t: MsgType.Forward, term: this.term, incarnation: this.incarnation, items }, false);
    }
    if (this.dur.inflight === null && this.dur.stateVersion > this.dur.writtenVersion) {
      const stamp = this.counter.read() + 1;
      const token = this.dur.nextToken++;
      this.dur.inflight = { token, version: this.dur.stateVersion, stamp, lastIndex: this.log.lastIndex };
      this.dur.writtenVersion = this.dur.stateVersion;
      this.out.push({ type: 'persist', token, record: this.buildRecord(stamp) });
    }
  }

  private nonce(): Uint8Array {
    const nonce = new Uint8Array(12);
    const v = new DataView(nonce.buffer);
    for (let k = 0; k < 3; k++) v.setUint32(k * 4, this.rng() >>> 0);
    return nonce;
  }

  /** Everything that changed since the previous persist: snapshot, dropped suffix, new frames, hard state. */
  private buildRecord(stamp: number): PersistRecord {
    const snap = this.log.snapshot;
    let snapshot: Uint8Array | null = null;
    if (this.dur.snapshotDirty) {
      snapshot = sealSnapshot(this.storageKey, this.id, this.nonce(), snap, this.sc);
      this.dur.snapRef = { index: snap.index, term: snap.term, digest: snapshotDigest(snapshot, this.sc) };
      this.dur.snapshotDirty = false;
    }
    const frames: Uint8Array[] = [];
    for (let i = Math.max(this.dur.diskIndex, snap.index) + 1; i <= this.log.lastIndex; i++) {
      const e = this.log.entry(i) as LogEntry;
      frames.push(sealFrame(this.storageKey, this.id, i, this.log.termAt(i - 1) ?? 0, this.nonce(), e, this.sc));
    }
    this.dur.diskIndex = this.log.lastIndex;
    const truncateFrom = this.dur.truncateFrom;
    this.dur.truncateFrom = null;
    const hardState = sealHardState(this.storageKey, this.id, stamp, this.nonce(), {
      term: this.term, votedFor: this.votedFor, learner: this.learner,
      lastIndex: this.log.lastIndex, lastTerm: this.log.lastTerm, snapshot: this.dur.snapRef,
    }, this.sc);
    return { snapshot, truncateFrom, frames, hardState };
  }

  /** The log lost its entries from `from` on: frames already handed out for them are dead. */
  private dropDiskFrom(from: number): void {
    if (from > this.dur.diskIndex) return;
    this.dur.truncateFrom = Math.min(this.dur.truncateFrom ?? from, from);
    this.dur.diskIndex = from - 1;
  }

  private onPersisted(token: number): void {
    const w = this.dur.inflight;
    if (w === null || w.token !== token) return;
    const value = this.counter.increment();
    if (value !== w.stamp && !this.cfg.unsafeAcceptRollback) throw new Error('monotonic counter moved outside this member');
    this.dur.inflight = null;
    this.dur.durableVersion = w.version;
    this.dur.durableLastIndex = Math.min(w.lastIndex, this.log.lastIndex);
    const keep: typeof this.dur.outbox = [];
    for (const m of this.dur.outbox) {
      if (m.version <= this.dur.durableVersion) this.out.push({ type: 'send', to: m.to, bytes: this.auth.seal(m.to, encodeBody(m.msg)) });
      else keep.push(m);
    }
    this.dur.outbox = keep;
    if (this.role === 'leader') this.advanceCommit();
  }

  // ---------------------------------------------------------------- timers

  /** An election timeout: anywhere in [min, max), or its lower or upper half when a member is preferred. */
  private randomTimeout(): number {
    let lo = this.cfg.electionTimeoutMin;
    let hi = this.cfg.electionTimeoutMax;
    const preferred = this.cfg.preferredLeader;
    if (preferred !== undefined && hi - lo >= 2) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (preferred === this.id) hi = mid;
      else lo = mid;
    }
    const span = Math.max(1, hi - lo);
    return lo + ((this.rng() >>> 0) % span);
  }

  private resetElectionTimer(): void {
    this.electionDeadline = this.now + this.randomTimeout();
  }

  /**
   * When a tick next has work to do, on the node's clock: the leader's heartbeat or check-quorum,
   * a follower's or candidate's election deadline, a learner's rejoin probe; `now` itself when a
   * tick is wanted as soon as the host next ticks (a commit some peer has not been told). Infinity
   * when no tick is due. A host may skip the ticks before it (a tick earlier does no harm), as long
   * as it moves the clock on with every step (a `clock` input). A leader's hand-over to the
   * preferred leader is then checked at its heartbeats.
   */
  nextTickDue(): number {
    let due = Infinity;
    if (this.learner && this.rejoinTerm === null) due = this.probeDue;
    if (this.role === 'leader') return this.commitNotify ? this.now : Math.min(due, this.quorumCheckAt, this.heartbeatDue);
    if (!this.learner) due = Math.min(due, this.electionDeadline);
    return due;
  }

  private onTick(): void {
    if (this.learner && this.rejoinTerm === null && this.now >= this.probeDue) {
      this.probeDue = this.now + this.cfg.electionTimeoutMin;
      for (const p of this.peers) this.send(p, { t: MsgType.RejoinProbe, nonce: this.probeNonce }, false);
    }
    if (this.role === 'leader') {
      if (this.now >= this.quorumCheckAt) {
        // check-quorum: step down if a majority has not answered within an election timeout.
        const since = this.quorumCheckAt - this.cfg.electionTimeoutMax;
        let alive = 1;
        for (const p of this.peers) if ((this.progress.of(p).ackAt ?? -Infinity) >= since && this.progress.of(p).voter) alive++;
        if (alive < this.majority) return this.becomeFollower(this.term, null);
        this.quorumCheckAt = this.now + this.cfg.electionTimeoutMax;
      }
      if (this.now >= this.heartbeatDue) this.heartbeat();
      else if (this.commitNotify) this.notifyCommit();
      this.commitNotify = false;
      this.maybeHandOver();
      return;
    }
    if (!this.learner && this.now >= this.electionDeadline) this.startPreVote();
  }

  /**
   * The commit index moved since some peer was last sent it and no append carried it since: send
   * those peers an append now (normally empty: a heartbeat). Called at the tick after the commit,
   * so a follower learns a commit within one tick even when nothing else is sent.
   */
  private notifyCommit(): void {
    for (const p of this.peers) if (this.progress.of(p).sentCommit < this.commitIndex) this.sendAppend(p);
  }

  private heartbeat(): void {
    this.heartbeatDue = this.now + this.cfg.heartbeatInterval;
    for (const p of this.peers) {
      // Retransmit from the last acknowledged entry. A peer that has not answered yet in this term
      // keeps its optimistic position (a mismatch makes it answer with a hint), and a peer that was
      // sent a snapshot recently is given time to install it: rewinding either to index 1 would
      // resend the whole state machine every heartbeat, hundreds of MB with a million users.
      const pr = this.progress.of(p);
      const match = pr.match;
      if (match !== undefined && match < this.log.lastIndex) {
        if (!(match < this.log.snapshot.index && this.installing(pr))) pr.next = match + 1;
      }
      this.sendAppend(p);
    }
  }

  // ---------------------------------------------------------------- elections

  private startPreVote(): void {
    this.resetElectionTimer();
    this.role = 'precandidate';
    this.leaderId = null;
    this.votes = new Set([this.id]);
    if (this.votes.size >= this.majority) return this.startElection();
    for (const p of this.peers) {
      this.send(p, { t: MsgType.Vote, term: this.term + 1, lastIndex: this.log.lastIndex, lastTerm: this.log.lastTerm, pre: true, transfer: false }, false);
    }
  }

  /** `transfer`: the leader asked this member to campaign (TimeoutNow); voters set their lease aside. */
  private startElection(transfer = false): void {
    this.stats.elections++;
    this.term += 1;
    this.votedFor = this.id;
    this.role = 'candidate';
    this.leaderId = null;
    this.votes = new Set([this.id]);
    this.dirty();
    this.resetElectionTimer();
    if (this.votes.size >= this.majority) return this.becomeLeader();
    for (const p of this.peers) {
      this.send(p, { t: MsgType.Vote, term: this.term, lastIndex: this.log.lastIndex, lastTerm: this.log.lastTerm, pre: false, transfer });
    }
  }

  /**
   * Leader placement (docs/groups.md): a leader that is not the group's preferred leader hands over
   * to it once it has led for an election timeout and the preferred member is a voter holding the
   * whole log and answering. At most once per election timeout; a preferred member that cannot win
   * (its log behind a voter's) simply loses, and leadership settles as after any election.
   */
  private maybeHandOver(): void {
    const preferred = this.cfg.preferredLeader;
    if (preferred === undefined || preferred === this.id || !this.peers.includes(preferred) || this.now < this.transferDue) return;
    const pr = this.progress.of(preferred);
    if (pr.voter !== true || pr.match !== this.log.lastIndex || pr.ackAt === undefined || this.now - pr.ackAt > 2 * this.cfg.heartbeatInterval) return;
    this.transferDue = this.now + this.cfg.electionTimeoutMax;
    this.stats.handOvers++;
    this.send(preferred, { t: MsgType.TimeoutNow, term: this.term }, false);
  }

  /** Only the group's preferred leader acts on it, only from its current leader, only in that leader's term. */
  private onTimeoutNow(from: MemberId, m: TimeoutNowMsg): void {
    if (this.cfg.preferredLeader !== this.id || this.learner || this.role !== 'follower') return;
    if (m.term !== this.term || from !== this.leaderId) return;
    this.startElection(true);
  }

  private inLease(): boolean {
    if (this.role === 'leader') return true;
    return this.leaderId !== null && this.now - this.lastLeaderContact < this.cfg.electionTimeoutMin;
  }

  private onVote(from: MemberId, m: VoteMsg): void {
    if (m.pre) {
      const granted = !this.learner && m.term > this.term && !this.inLease() && this.log.isUpToDate(m.lastTerm, m.lastIndex);
      this.send(from, { t: MsgType.VoteResp, term: granted ? m.term : this.term, granted, pre: true }, false);
      return;
    }
    if (m.term < this.term) {
      this.send(from, { t: MsgType.VoteResp, term: this.term, granted: false, pre: false });
      return;
    }
    if (m.term > this.term) {
      // A live leader exists: ignore disruptive candidates, unless that leader asked this one to campaign.
      if (this.inLease() && !m.transfer) return;
      this.becomeFollower(m.term, null);
    }
    const granted = !this.learner && (this.votedFor === null || this.votedFor === from) && this.log.isUpToDate(m.lastTerm, m.lastIndex);
    if (granted && this.votedFor !== from) {
      this.votedFor = from;
      this.dirty();
    }
    if (granted) this.resetElectionTimer();
    this.send(from, { t: MsgType.VoteResp, term: this.term, granted, pre: false });
  }

  private onVoteResp(from: MemberId, m: VoteRespMsg): void {
    if (m.pre) {
      if (this.role !== 'precandidate') return;
      if (!m.granted) {
        if (m.term > this.term) this.becomeFollower(m.term, null);
        return;
      }
      if (m.term !== this.term + 1) return;
      this.votes.add(from);
      if (this.votes.size >= this.majority) this.startElection();
      return;
    }
    if (m.term > this.term) return this.becomeFollower(m.term, null);
    if (this.role !== 'candidate' || m.term !== this.term || !m.granted) return;
    this.votes.add(from);
    if (this.votes.size >= this.majority) this.becomeLeader();
  }

  private becomeFollower(term: number, leader: MemberId | null): void {
    if (term > this.term) {
      this.term = term;
      this.votedFor = this.learner ? VOTE_ABSTAIN : null;
      this.dirty();
    }
    if (this.role === 'leader') this.failPendingReads('deposed');
    if (this.role !== 'follower') this.resetElectionTimer();
    this.role = 'follower';
    this.leaderId = leader;
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leaderId = this.id;
    this.progress.resetForTerm();
    this.forwardSeen.clear();
    for (const p of this.peers) {
      const pr = this.progress.of(p);
      pr.next = this.log.lastIndex + 1;
      pr.ackAt = this.now;
      pr.voter = true;
    }
    this.reads.seq = 0;
    this.quorumCheckAt = this.now + this.cfg.electionTimeoutMax;
    this.heartbeatDue = this.now + this.cfg.heartbeatInterval;
    this.transferDue = this.now + this.cfg.electionTimeoutMax;
    this.appendLocal({ term: this.term, kind: EntryKind.Noop, origin: this.id, incarnation: this.incarnation, requestId: 0, data: new Uint8Array(0) });
    const buffered = this.forwardBuffer.splice(0, this.forwardBuffer.length);
    for (const b of buffered) this.appendLocal(this.dataEntry(this.id, this.incarnation, b.requestId, b.data));
    this.advanceCommit();
  }

  // ---------------------------------------------------------------- replication (leader side)

  private dataEntry(origin: MemberId, incarnation: number, requestId: number, data: Uint8Array): LogEntry {
    return { term: this.term, kind: EntryKind.Data, origin, incarnation, requestId, data };
  }

  private appendLocal(e: LogEntry): void {
    this.log.append(e);
    this.dirty();
    this.needsBroadcast = true;
  }

  private sendAppend(p: MemberId): void {
    const pr = this.progress.of(p);
    let next = pr.next ?? this.log.lastIndex + 1;
    if (next <= this.log.snapshot.index && this.installing(pr)) {
      // The peer was sent the snapshot moments ago and is still installing it (or it was lost and
      // will be resent later): an empty append at the snapshot keeps the leader's authority.
      next = this.log.snapshot.index + 1;
      const prevIndex = next - 1;
      this.send(p, {
        t: MsgType.Append, term: this.term, prevIndex, prevTerm: this.log.termAt(prevIndex) ?? 0,
        commit: this.commitIndex, leaderLast: this.log.lastIndex, readSeq: this.reads.seq, entries: [],
      }, false);
      pr.sentCommit = this.commitIndex;
      return;
    }
    if (next <= this.log.snapshot.index) {
      const s = this.log.snapshot;
      this.stats.snapshotsSent++;
      pr.snapshotSentAt = this.now;
      this.send(p, { t: MsgType.Snapshot, term: this.term, index: s.index, snapTerm: s.term, readSeq: this.reads.seq, data: s.data }, false);
      pr.next = s.index + 1;
      pr.sentCommit = Math.max(pr.sentCommit, Math.min(s.index, this.commitIndex));
      return;
    }
    const prevIndex = next - 1;
    const entries = this.log.slice(next, this.cfg.maxBatch);
    const msg: AppendMsg = {
      t: MsgType.Append, term: this.term, prevIndex, prevTerm: this.log.termAt(prevIndex) ?? 0,
      commit: this.commitIndex, leaderLast: this.log.lastIndex, readSeq: this.reads.seq, entries,
    };
    this.send(p, msg, false); // the leader may send before its own write; it counts itself only once durable
    pr.next = next + entries.length;
    pr.sentCommit = this.commitIndex;
  }

  /** The peer was sent the snapshot moments ago: give it time to install before resending. */
  private installing(pr: PeerProgress): boolean {
    const sentAt = pr.snapshotSentAt;
    return sentAt !== undefined && this.now - sentAt < SNAPSHOT_RETRY_TIMEOUTS * this.cfg.electionTimeoutMax;
  }

  private onAppendResp(from: MemberId, m: AppendRespMsg): void {
    if (m.term > this.term) return this.becomeFollower(m.term, null);
    if (this.role !== 'leader' || m.term !== this.term) return;
    const pr = this.progress.of(from);
    pr.ackAt = this.now;
    pr.voter = m.voter;
    if (m.voter) pr.ackedSeq = Math.max(pr.ackedSeq ?? 0, m.readSeq);
    if (!m.success && m.match < (pr.match ?? 0)) {
      // The peer's log ends below what it acknowledged in this term: it lost its state (a learner
      // after a detected rollback, or a voter whose whole directory, counter included, was rolled
      // back or deleted: undetectable in the software backend), or this is an answer overtaken by
      // a later one. Either way what it holds is no longer known: forget its match (it no longer
      // counts toward a commit until it acknowledges again) and probe from where its log ends.
      // Its hint is not a match: the entries below it may differ from the leader's.
      pr.match = undefined;
    }
    const match = pr.match ?? 0;
    const next = pr.next ?? this.log.lastIndex + 1;
    if (m.success) {
      const newMatch = Math.min(Math.max(match, m.match), this.log.lastIndex);
      pr.match = newMatch;
      if (newMatch >= this.log.snapshot.index) pr.snapshotSentAt = undefined;
      if (next <= newMatch) pr.next = newMatch + 1;
      this.advanceCommit();
      if ((pr.next ?? 0) <= this.log.lastIndex) this.sendAppend(from);
    } else {
      pr.next = Math.max(match + 1, Math.min(next - 1, m.match + 1));
      // A peer still installing the snapshot it was sent hears again at the next heartbeat.
      if (!(pr.next <= this.log.snapshot.index && this.installing(pr))) this.sendAppend(from);
    }
    this.confirmReads();
  }

  private advanceCommit(): void {
    if (this.role !== 'leader') return;
    const matches = [Math.min(this.dur.durableLastIndex, this.log.lastIndex)];
    for (const p of this.peers) if (this.progress.of(p).voter) matches.push(this.progress.of(p).match ?? 0);
    matches.sort((a, b) => b - a);
    const n = matches[this.commitQuorum - 1] ?? 0;
    // Raft §5.4.2: only entries of the current term are committed by counting replicas.
    if (n > this.commitIndex && this.log.termAt(n) === this.term) {
      this.commitIndex = n;
      this.applyCommitted();
      // No AppendEntries round for the commit alone: it rides on the next append to each peer
      // (new entries, a retransmission, a read round), or on a heartbeat at the next tick.
      this.commitNotify = true;
      if (this.reads.awaitingTermCommit.length > 0) {
        const waiting = this.reads.awaitingTermCommit.splice(0);
        for (const r of waiting) this.startRead(r);
      }
    }
  }

  private onForward(from: MemberId, m: ForwardMsg): void {
    if (this.role !== 'leader' || m.term !== this.term) return;
    const key = `${from}:${m.incarnation}`;
    let w = this.forwardSeen.get(key);
    if (!w) this.forwardSeen.set(key, (w = { hwm: 0, seen: new Set() }));
    for (const it of m.items) {
      // Drop duplicates and replays within this term (request ids rise per origin incarnation).
      if (w.seen.has(it.requestId) || it.requestId + FORWARD_WINDOW <= w.hwm) continue;
      w.seen.add(it.requestId);
      if (it.requestId > w.hwm) w.hwm = it.requestId;
      this.appendLocal(this.dataEntry(from, m.incarnation, it.requestId, it.data));
    }
    if (w.seen.size > 2 * FORWARD_WINDOW) for (const id of w.seen) if (id + FORWARD_WINDOW <= w.hwm) w.seen.delete(id);
  }

  // ---------------------------------------------------------------- replication (follower side)

  private acceptLeader(from: MemberId, term: number): boolean {
    if (term < this.term) return false;
    this.becomeFollower(term, from);
    this.lastLeaderContact = this.now;
    this.resetElectionTimer();
    return true;
  }

  private onAppend(from: MemberId, m: AppendMsg): void {
    if (!this.acceptLeader(from, m.term)) {
      this.send(from, { t: MsgType.AppendResp, term: this.term, success: false, match: 0, readSeq: m.readSeq, voter: !this.learner }, false);
      return;
    }
    this.leaderCommit = Math.max(this.leaderCommit, m.commit);
    const snapIdx = this.log.snapshot.index;
    if (m.prevIndex >= snapIdx && this.log.termAt(m.prevIndex) !== m.prevTerm) {
      const hint = Math.min(m.prevIndex - 1, this.log.lastIndex);
      this.send(from, { t: MsgType.AppendResp, term: this.term, success: false, match: Math.max(hint, 0), readSeq: m.readSeq, voter: !this.learner });
      return;
    }
    const changedFrom = this.log.merge(m.prevIndex, m.entries);
    if (changedFrom > 0) {
      this.dropDiskFrom(changedFrom);
      this.dirty();
      this.dur.durableLastIndex = Math.min(this.dur.durableLastIndex, m.prevIndex);
    }
    const matched = Math.max(m.prevIndex + m.entries.length, snapIdx);
    const commit = Math.min(m.commit, matched);
    if (commit > this.commitIndex) {
      this.commitIndex = commit;
      this.applyCommitted();
    }
    if (this.learner && this.rejoinTerm !== null && m.term >= this.rejoinTerm && matched >= m.leaderLast) this.becomeVoter();
    this.send(from, { t: MsgType.AppendResp, term: this.term, success: true, match: matched, readSeq: m.readSeq, voter: !this.learner });
  }

  private onSnapshot(from: MemberId, m: SnapshotMsg): void {
    if (!this.acceptLeader(from, m.term)) {
      this.send(from, { t: MsgType.AppendResp, term: this.term, success: false, match: 0, readSeq: m.readSeq, voter: !this.learner }, false);
      return;
    }
    this.leaderCommit = Math.max(this.leaderCommit, m.index);
    if (m.index > this.commitIndex) {
      if (!this.log.install({ index: m.index, term: m.snapTerm, data: m.data })) this.dropDiskFrom(m.index + 1);
      this.dur.snapshotDirty = true;
      this.sm.restore(m.data);
      this.commitIndex = this.lastApplied = m.index;
      this.appliedBytes = 0;
      this.dur.durableLastIndex = Math.min(this.dur.durableLastIndex, m.index);
      this.stats.snapshotsInstalled++;
      this.dirty();
      this.out.push({ type: 'restored', index: m.index });
      this.serveLocalReads();
    }
    this.send(from, { t: MsgType.AppendResp, term: this.term, success: true, match: m.index, readSeq: m.readSeq, voter: !this.learner });
  }

  private applyCommitted(): void {
    while (this.lastApplied < this.commitIndex) {
      const index = this.lastApplied + 1;
      const e = this.log.entry(index);
      if (e === undefined) break;
      this.lastApplied = index;
      this.appliedBytes += ENTRY_OVERHEAD + e.data.length;
      if (e.kind !== EntryKind.Data) continue;
      const result = this.sm.apply(index, e.data);
      const mine = e.origin === this.id && e.incarnation === this.incarnation;
      this.out.push(mine
        ? { type: 'committed', index, entry: e.data, result, requestId: e.requestId }
        : { type: 'committed', index, entry: e.data, result });
    }
    this.serveLocalReads();
    if (
      this.lastApplied - this.log.snapshot.index >= this.cfg.snapshotThreshold &&
      this.appliedBytes >= this.cfg.snapshotLogRatio * this.log.snapshot.data.length
    ) {
      const point = this.sm.compactionPoint ? this.sm.compactionPoint() : { index: this.lastApplied, snapshot: this.sm.snapshot() };
      if (point !== null && point.index > this.log.snapshot.index && point.index <= this.lastApplied) {
        this.appliedBytes = 0;
        this.log.compact(point.index, point.snapshot);
        this.dur.snapshotDirty = true;
        this.dirty();
      }
    }
  }

  // ---------------------------------------------------------------- proposals

  private onPropose(requestId: number, data: Uint8Array): void {
    if (this.role === 'leader') {
      this.appendLocal(this.dataEntry(this.id, this.incarnation, requestId, data));
      if (this.commitQuorum === 1) this.advanceCommit();
      return;
    }
    if (this.forwardBuffer.length >= this.cfg.maxPendingForwards) {
      this.out.push(this.rejection(requestId, 'no-leader'));
      return;
    }
    this.forwardBuffer.push({ requestId, data }); // sent to the leader once one is known
  }

  private rejection(requestId: number, reason: 'not-leader' | 'no-leader' | 'learner' | 'deposed'): NodeOutput {
    return this.leaderId !== null && this.leaderId !== this.id
      ? { type: 'rejected', requestId, reason, leaderHint: this.leaderId }
      : { type: 'rejected', requestId, reason };
  }

  // ---------------------------------------------------------------- linearizable reads (read index)

  private onReadIndex(requestId: number): void {
    if (this.role === 'leader') return this.startRead({ seq: 0, index: 0, local: requestId });
    if (this.leaderId === null) {
      this.out.push(this.rejection(requestId, 'no-leader'));
      return;
    }
    this.reads.remote.add(requestId);
    this.send(this.leaderId, { t: MsgType.ReadReq, term: this.term, incarnation: this.incarnation, requestId }, false);
  }

  private startRead(r: PendingRead): void {
    // A new leader does not know the commit index until an entry of its own term is committed.
    if (this.log.termAt(this.commitIndex) !== this.term) {
      this.reads.awaitingTermCommit.push(r);
      return;
    }
    this.reads.seq += 1;
    this.reads.pending.push({ ...r, seq: this.reads.seq, index: this.commitIndex });
    for (const p of this.peers) this.sendAppend(p);
    this.heartbeatDue = this.now + this.cfg.heartbeatInterval;
    this.confirmReads();
  }

  private confirmReads(): void {
    if (this.role !== 'leader' || this.reads.pending.length === 0) return;
    const keep: PendingRead[] = [];
    for (const r of this.reads.pending) {
      let acks = 1;
      for (const p of this.peers) if ((this.progress.of(p).ackedSeq ?? 0) >= r.seq) acks++;
      if (acks < this.majority) {
        keep.push(r);
        continue;
      }
      if (r.local !== undefined) this.reads.localWaiters.push({ requestId: r.local, index: r.index });
      if (r.remote) {
        this.send(r.remote.to, { t: MsgType.ReadResp, term: this.term, incarnation: r.remote.incarnation, requestId: r.remote.requestId, ok: true, index: r.index }, false);
      }
    }
    this.reads.pending = keep;
    this.serveLocalReads();
  }

  private failPendingReads(reason: 'deposed'): void {
    for (const r of [...this.reads.pending, ...this.reads.awaitingTermCommit]) {
      if (r.local !== undefined) this.out.push({ type: 'rejected', requestId: r.local, reason });
      if (r.remote) {
        this.send(r.remote.to, { t: MsgType.ReadResp, term: this.term, incarnation: r.remote.incarnation, requestId: r.remote.requestId, ok: false, index: 0 }, false);
      }
    }
    this.reads.pending = [];
    this.reads.awaitingTermCommit = [];
  }

  private onReadReq(from: MemberId, m: ReadReqMsg): void {
    const remote = { to: from, incarnation: m.incarnation, requestId: m.requestId };
    if (this.role !== 'leader' || m.term > this.term) {
      this.send(from, { t: MsgType.ReadResp, term: this.term, incarnation: m.incarnation, requestId: m.requestId, ok: false, index: 0 }, false);
      return;
    }
    this.startRead({ seq: 0, index: 0, remote });
  }

  private onReadResp(m: ReadRespMsg): void {
    if (m.incarnation !== this.incarnation || !this.reads.remote.delete(m.requestId)) return; // stale or replayed
    if (m.ok) {
      this.reads.localWaiters.push({ requestId: m.requestId, index: m.index });
      this.serveLocalReads();
    } else {
      this.out.push(this.rejection(m.requestId, 'not-leader'));
    }
  }

  private serveLocalReads(): void {
    if (this.reads.localWaiters.length === 0) return;
    const keep: typeof this.reads.localWaiters = [];
    for (const w of this.reads.localWaiters) {
      if (this.lastApplied >= w.index) this.out.push({ type: 'readReady', requestId: w.requestId, index: w.index });
      else keep.push(w);
    }
    this.reads.localWaiters = keep;
  }

  // ---------------------------------------------------------------- learner rejoin

  private onRejoinInfo(from: MemberId, m: RejoinInfoMsg): void {
    if (!this.learner || this.rejoinTerm !== null || m.nonce !== this.probeNonce || !m.voter) return;
    this.probeReplies.set(from, m.term);
    // A majority of the cluster, not counting this member, must answer: see docs/consensus.md.
    if (this.probeReplies.size < this.majority) return;
    const t = Math.max(...this.probeReplies.values());
    this.rejoinTerm = t;
    if (t > this.term) {
      this.term = t;
      this.votedFor = VOTE_ABSTAIN;
      this.dirty();
    }
  }

  private becomeVoter(): void {
    this.learner = false;
    this.votedFor = VOTE_ABSTAIN; // never vote in a term it may already have voted in
    this.bootNote += '; rejoined as voter';
    this.dirty();
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- receive

  private onReceive(bytes: Uint8Array): void {
    let from: MemberId;
    let msg: Message;
    try {
      const opened = this.auth.open(bytes);
      from = opened.from;
      msg = decodeBody(opened.body);
    } catch (e) {
      if (e instanceof AuthError) this.stats.droppedAuth++;
      else if (e instanceof ConsensusDecodeError) this.stats.droppedMalformed++;
      else throw e;
      return;
    }
    switch (msg.t) {
      case MsgType.Vote: return this.onVote(from, msg);
      case MsgType.VoteResp: return this.onVoteResp(from, msg);
      case MsgType.Append: return this.onAppend(from, msg);
      case MsgType.AppendResp: return this.onAppendResp(from, msg);
      case MsgType.Snapshot: return this.onSnapshot(from, msg);
      case MsgType.Forward: return this.onForward(from, msg);
      case MsgType.ReadReq: return this.onReadReq(from, msg);
      case MsgType.ReadResp: return this.onReadResp(msg);
      case MsgType.RejoinProbe:
        // Gated: the term reported must be durable.
        this.send(from, { t: MsgType.RejoinInfo, nonce: msg.nonce, term: this.term, voter: !this.learner });
        return;
      case MsgType.RejoinInfo: return this.onRejoinInfo(from, msg);
      case MsgType.TimeoutNow: return this.onTimeoutNow(from, msg);
    }
  }
}
