/** Consensus message types and their strict binary encoding (the body inside an authenticated envelope). */
import { ConsensusDecodeError, Reader, Writer } from './codec.js';
import type { EntryKind, LogEntry } from './types.js';

export const enum MsgType {
  Vote = 1,
  VoteResp = 2,
  Append = 3,
  AppendResp = 4,
  Snapshot = 5,
  Forward = 6,
  ReadReq = 7,
  ReadResp = 8,
  RejoinProbe = 9,
  RejoinInfo = 10,
  TimeoutNow = 11,
}

/** `transfer`: the candidate campaigns because its leader asked it to (TimeoutNow), so voters set their lease aside. */
export interface VoteMsg { t: MsgType.Vote; term: number; lastIndex: number; lastTerm: number; pre: boolean; transfer: boolean }
export interface VoteRespMsg { t: MsgType.VoteResp; term: number; granted: boolean; pre: boolean }
export interface AppendMsg {
  t: MsgType.Append; term: number; prevIndex: number; prevTerm: number; commit: number;
  leaderLast: number; readSeq: number; entries: LogEntry[];
}
export interface AppendRespMsg {
  t: MsgType.AppendResp; term: number; success: boolean; match: number; readSeq: number; voter: boolean;
}
export interface SnapshotMsg {
  t: MsgType.Snapshot; term: number; index: number; snapTerm: number; readSeq: number; data: Uint8Array;
}
export interface ForwardMsg {
  t: MsgType.Forward; term: number; incarnation: number; items: Array<{ requestId: number; data: Uint8Array }>;
}
export interface ReadReqMsg { t: MsgType.ReadReq; term: number; incarnation: number; requestId: number }
export interface ReadRespMsg {
  t: MsgType.ReadResp; term: number; incarnation: number; requestId: number; ok: boolean; index: number;
}
export interface RejoinProbeMsg { t: MsgType.RejoinProbe; nonce: number }
export interface RejoinInfoMsg { t: MsgType.RejoinInfo; nonce: number; term: number; voter: boolean }
/** A leader hands leadership to the group's preferred leader: campaign now, without a pre-vote (Raft thesis §3.10). */
export interface TimeoutNowMsg { t: MsgType.TimeoutNow; term: number }

export type Message =
  | VoteMsg | VoteRespMsg | AppendMsg | AppendRespMsg | SnapshotMsg | ForwardMsg
  | ReadReqMsg | ReadRespMsg | RejoinProbeMsg | RejoinInfoMsg | TimeoutNowMsg;

export function writeEntry(w: Writer, e: LogEntry): void {
  w.u64(e.term).u8(e.kind).u8(e.origin).u32(e.incarnation).u32(e.requestId).bytes(e.data);
}

export function readEntry(r: Reader): LogEntry {
  const term = r.u64();
  const kind = r.u8();
  if (kind !== 0 && kind !== 1) throw new ConsensusDecodeError('unknown entry kind');
  return { term, kind: kind as EntryKind, origin: r.u8(), incarnation: r.u32(), requestId: r.u32(), data: r.bytes() };
}

const ENTRY_MIN = 8 + 1 + 1 + 4 + 4 + 4;

export function encodeBody(m: Message): Uint8Array {
  const w = new Writer();
  w.u8(m.t);
  switch (m.t) {
    case MsgType.Vote:
      w.u64(m.term).u64(m.lastIndex).u64(m.lastTerm).bool(m.pre).bool(m.transfer);
      break;
    case MsgType.VoteResp:
      w.u64(m.term).bool(m.granted).bool(m.pre);
      break;
    case MsgType.Append:
      w.u64(m.term).u64(m.prevIndex).u64(m.prevTerm).u64(m.commit).u64(m.leaderLast).u64(m.readSeq);
      w.u32(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case MsgType.AppendResp:
      w.u64(m.term).bool(m.success).u64(m.match).u64(m.readSeq).bool(m.voter);
      break;
    case MsgType.Snapshot:
      w.u64(m.term).u64(m.index).u64(m.snapTerm).u64(m.readSeq).bytes(m.data);
      break;
    case MsgType.Forward:
      w.u64(m.term).u32(m.incarnation).u32(m.items.length);
      for (const it of m.items) w.u32(it.requestId).bytes(it.data);
      break;
    case MsgType.ReadReq:
      w.u64(m.term).u32(m.incarnation).u32(m.requestId);
      break;
    case MsgType.ReadResp:
      w.u64(m.term).u32(m.incarnation).u32(m.requestId).bool(m.ok).u64(m.index);
      break;
    case MsgType.RejoinProbe:
      w.u64(m.nonce);
      break;
    case MsgType.RejoinInfo:
      w.u64(m.nonce).u64(m.term).bool(m.voter);
      break;
    case MsgType.TimeoutNow:
      w.u64(m.term);
      break;
  }
  return w.finish();
}

/** Decodes a message body; throws ConsensusDecodeError on anything malformed. */
export function decodeBody(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  const t = r.u8();
  let m: Message;
  switch (t) {
    case MsgType.Vote:
      m = { t, term: r.u64(), lastIndex: r.u64(), lastTerm: r.u64(), pre: r.bool(), transfer: r.bool() };
      break;
    case MsgType.VoteResp:
      m = { t, term: r.u64(), granted: r.bool(), pre: r.bool() };
      break;
    case MsgType.Append: {
      const term = r.u64(), prevIndex = r.u64(), prevTerm = r.u64(), commit = r.u64();
      const leaderLast = r.u64(), readSeq = r.u64();
      const n = r.count(ENTRY_MIN);
      const entries: LogEntry[] = [];
      for (let i = 0; i < n; i++) entries.push(readEntry(r));
      m = { t, term, prevIndex, prevTerm, commit, leaderLast, readSeq, entries };
      break;
    }
    case MsgType.AppendResp:
      m = { t, term: r.u64(), success: r.bool(), match: r.u64(), readSeq: r.u64(), voter: r.bool() };
      break;
    case MsgType.Snapshot:
      m = { t, term: r.u64(), index: r.u64(), snapTerm: r.u64(), readSeq: r.u64(), data: r.bytes() };
      break;
    case MsgType.Forward: {
      const term = r.u64(), incarnation = r.u32();
      const n = r.count(8);
      const items: Array<{ requestId: number; data: Uint8Array }> = [];
      for (let i = 0; i < n; i++) items.push({ requestId: r.u32(), data: r.bytes() });
      m = { t, term, incarnation, items };
      break;
    }
    case MsgType.ReadReq:
      m = { t, term: r.u64(), incarnation: r.u32(), requestId: r.u32() };
      break;
    case MsgType.ReadResp:
      m = { t, term: r.u64(), incarnation: r.u32(), requestId: r.u32(), ok: r.bool(), index: r.u64() };
      break;
    case MsgType.RejoinProbe:
      m = { t, nonce: r.u64() };
      break;
    case MsgType.RejoinInfo:
      m = { t, nonce: r.u64(), term: r.u64(), voter: r.bool() };
      break;
    case MsgType.TimeoutNow:
      m = { t, term: r.u64() };
      break;
    default:
      throw new ConsensusDecodeError(`unknown message type ${t}`);
  }
  r.end();
  return m;
}
