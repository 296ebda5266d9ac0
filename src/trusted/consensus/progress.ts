/**
 * What a leader knows about each peer's replication, one record per peer (as etcd's raft keeps
 * its `tracker.Progress`). A field is undefined until the leader learns it in its current term;
 * `ackAt` alone survives a new leadership term (check-quorum looks back across it).
 */
import type { MemberId } from './types.js';

export class PeerProgress {
  /** The next log index to send (Raft's nextIndex). */
  next: number | undefined = undefined;
  /** The highest index known to be on the peer (Raft's matchIndex); undefined until it answers. */
  match: number | undefined = undefined;
  /** Whether the peer last said it votes (learners do not count toward commit or quorum). */
  voter: boolean | undefined = undefined;
  /** Local time of the peer's last acknowledgement. */
  ackAt: number | undefined = undefined;
  /** When the leader last sent the peer a snapshot (cleared by an acknowledgement that covers it). */
  snapshotSentAt: number | undefined = undefined;
  /** The highest read sequence the peer acknowledged in this term (read index confirmation). */
  ackedSeq: number | undefined = undefined;
  /** The highest commit index sent to the peer in this term (in an AppendEntries or InstallSnapshot). */
  sentCommit = 0;

  /** A new leadership term: forget everything except when the peer last acknowledged. */
  resetForTerm(): void {
    this.next = undefined;
    this.match = undefined;
    this.voter = undefined;
    this.snapshotSentAt = undefined;
    this.ackedSeq = undefined;
    this.sentCommit = 0;
  }
}

/** The leader's `PeerProgress` records, created on first use. */
export class ProgressTracker {
  private readonly peers = new Map<MemberId, PeerProgress>();

  of(peer: MemberId): PeerProgress {
    let p = this.peers.get(peer);
    if (!p) this.peers.set(peer, (p = new PeerProgress()));
    return p;
  }

  resetForTerm(): void {
    for (const p of this.peers.values()) p.resetForTerm();
  }
}
