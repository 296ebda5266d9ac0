/**
 * The operator's side of a range transfer between replication groups (`bkv fleet move`, `split`;
 * docs/groups.md): untrusted host code that carries the group cores' messages between the two
 * groups' leaders over the member API (`POST /v1/groups/<g>/transfer`) and decides when to retry.
 * Every step is idempotent and chosen from the groups' committed state, read from the members'
 * status, so a driver that crashed, or lost messages, or ran into a leader change simply runs
 * again (`resume`) and continues where the groups are. It cannot make a group commit a step out of
 * order: each core checks the messages and its committed state.
 */
import { BkvError, type ErrorCode } from '../../shared/errors.js';
import { fleetGroups, memberApiUrl, type FleetConfig } from './config.js';
import type { GroupStatus } from './member-status.js';
import { fetchStatuses, groupLeader } from './supervisor.js';

export interface TransferRange {
  start: number;
  end: number;
}

export interface TransferResult {
  outcome: 'done' | 'aborted';
  source: number;
  dest: number;
  seq: number;
  range: TransferRange;
  /** Records carried in chunks (by this run), chunk messages, and the attempts at streaming them. */
  records: number;
  chunks: number;
  rounds: number;
  ms: number;
}

export interface TransferDriverOptions {
  /** Give up after this long (default 120 s); the transfer stays open and `resume` continues it. */
  timeoutMs?: number;
  /** Ask the destination to refuse the open transfer instead of completing it. */
  cancel?: boolean;
  say?: (line: string) => void;
  /** Per HTTP call (default 30 s). */
  callTimeoutMs?: number;
}

interface View {
  leader: number;
  status: GroupStatus;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One call of the member transfer API; a typed BkvError from the member's error body otherwise. */
async function call<T>(config: FleetConfig, member: number, group: number, body: Record<string, unknown>, timeoutMs: number): Promise<T> {
  const m = config.members.find((x) => x.id === member);
  if (!m) throw new BkvError('USAGE', `no member ${member}`);
  const res = await fetch(new URL(`/v1/groups/${group}/transfer`, memberApiUrl(m)), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  }).catch((e: Error) => {
    throw new BkvError('UNAVAILABLE', `member ${member}: ${e.message}`);
  });
  const json = (await res.json().catch(() => ({}))) as { error?: { code?: ErrorCode; message?: string; reason?: string } } & T;
  if (!res.ok) {
    const e = json.error ?? {};
    throw new BkvError(e.code ?? 'INTERNAL', `member ${member}, group ${group}, ${String(body.op)}: ${e.message ?? `HTTP ${res.status}`}`, e.reason ? { reason: e.reason } : {});
  }
  return json;
}

/** The committed state of groups `gs` as their leaders report it (null where a group has no leader now). */
async function views(config: FleetConfig, gs: number[]): Promise<Array<View | null>> {
  const statuses = await fetchStatuses(config, 1500);
  return gs.map((g) => {
    const leader = groupLeader(statuses, g, config.quorum);
    const status = leader === null ? undefined : statuses.get(leader)?.groups?.find((x) => x.group === g);
    return leader !== null && status ? { leader, status } : null;
  });
}

/** Every group's committed state, by group, from its leader (null: no leader now). */
export async function groupViews(config: FleetConfig): Promise<Array<View | null>> {
  return views(config, Array.from({ length: fleetGroups(config).total }, (_, g) => g));
}

/** A transient failure: no leader, a leader change, a store catching up, a timeout. Worth retrying. */
const transient = (e: unknown): boolean => e instanceof BkvError && (e.code === 'UNAVAILABLE' || e.code === 'INTERNAL');

/**
 * Moves `range` (slots, a prefix, suffix or all of the source's range) from group `source` to
 * group `dest`, or with `range` null continues the source's open transfer. Returns when the source
 * committed the end of the transfer: `done` (the destination serves the range) or `aborted` (the
 * source serves it again).
 */
export async function runTransfer(config: FleetConfig, source: number, dest: number | null, range: TransferRange | null, opts: TransferDriverOptions = {}): Promise<TransferResult> {
  const groups = fleetGroups(config);
  if (!groups.multi) throw new BkvError('USAGE', 'this fleet runs one replication group: there is nothing to transfer');
  for (const g of [source, dest]) if (g !== null && (g < 0 || g >= groups.total)) throw new BkvError('USAGE', `no replication group ${g} (groups 0 to ${groups.total - 1})`);
  if (dest === source) throw new BkvError('USAGE', 'source and destination are the same group');
  const say = opts.say ?? (() => {});
  const t0 = performance.now();
  const deadline = t0 + (opts.timeoutMs ?? 120_000);
  const ct = opts.callTimeoutMs ?? 30_000;
  let open: { dest: number; seq: number; range: TransferRange } | null = null;
  let records = 0;
  let chunks = 0;
  let rounds = 0;
  let lastError = '';
  let started = false;

  while (performance.now() < deadline) {
    try {
      const [sv] = await views(config, [source]);
      if (!sv) throw new BkvError('UNAVAILABLE', `group ${source} has no leader now`);
      const out = sv.status.transfer.outgoing;
      if (!open) {
        if (out) {
          if (range && (out.dest !== dest || out.start !== range.start || out.end !== range.end)) {
            throw new BkvError('CONFLICT', `group ${source} has transfer ${out.seq} to group ${out.dest} open; finish it first (bkv fleet move --resume)`, { reason: 'busy' });
          }
          open = { dest: out.dest, seq: out.seq, range: { start: out.start, end: out.end } };
          if (!started) say(`group ${source}: transfer ${out.seq} to group ${out.dest} is open; continuing it`);
        } else if (range && dest !== null) {
          say(`group ${source} (leader member ${sv.leader}): committing TransferOut of slots [${range.start}, ${range.end}) to group ${dest}`);
          started = true;
          await call(config, sv.leader, source, { op: 'start', dest, start: range.start, end: range.end }, ct);
          continue; // read the committed outgoing transfer back
        } else {
          throw new BkvError('USAGE', `group ${source} has no open transfer to resume`);
        }
      }
      const tr = open;
      if (!out || out.seq !== tr.seq) {
        // The source ended it (a previous run, or another driver): report what the destination decided.
        const [dv] = await views(config, [tr.dest]);
        const d = dv?.status.transfer.decided.find((x) => x.source === source && x.seq === tr.seq);
        return { outcome: d?.accepted ? 'done' : 'aborted', source, dest: tr.dest, seq: tr.seq, range: tr.range, records, chunks, rounds, ms: performance.now() - t0 };
      }
      const [dv] = await views(config, [tr.dest]);
      if (!dv) throw new BkvError('UNAVAILABLE', `group ${tr.dest} has no leader now`);
      const decided = dv.status.transfer.decided.find((x) => x.source === source && x.seq === tr.seq);
      if (decided) {
        const { reply } = await call<{ reply: string }>(config, dv.leader, tr.dest, { op: 'reply', source }, ct);
        const { outcome } = await call<{ outcome: 'done' | 'aborted' }>(config, sv.leader, source, { op: 'finish', reply }, ct);
        say(`group ${source}: transfer ${tr.seq} ${outcome === 'done' ? `done: group ${tr.dest} serves the range` : 'aborted: the range is served by the source again'}`);
        return { outcome, source, dest: tr.dest, seq: tr.seq, range: tr.range, records, chunks, rounds, ms: performance.now() - t0 };
      }
      if (opts.cancel) {
        const { cancel } = await call<{ cancel: string }>(config, sv.leader, source, { op: 'cancel' }, ct);
        say(`group ${tr.dest}: asked to refuse transfer ${source}/${tr.seq}`);
        await call(config, dv.leader, tr.dest, { op: 'refuse', source, seq: tr.seq, cancel }, ct);
        continue;
      }
      const inc = dv.status.transfer.incoming;
      if (!inc || inc.source !== source || inc.seq !== tr.seq) {
        if (inc || dv.status.transfer.outgoing) {
          throw new BkvError('CONFLICT', `group ${tr.dest} is busy with another transfer; cancel this one (bkv fleet move --resume --cancel) or wait`, { reason: 'busy' });
        }
        const { offer } = await call<{ offer: string }>(config, sv.leader, source, { op: 'offer' }, ct);
        say(`group ${tr.dest} (leader member ${dv.leader}): committing TransferPrepare`);
        await call(config, dv.leader, tr.dest, { op: 'prepare', offer }, ct);
        continue;
      }
      // Stream the range's records: the source leader lists and proves them, the destination writes them.
      rounds++;
      let after: string | null = null;
      for (let index = 0; ; index++) {
        const c: { chunk: string | null; next: string | null; records: number } = await call(config, sv.leader, source, { op: 'chunk', index, after }, ct);
        if (!c.chunk) break;
        const got = await call<{ records: number }>(config, dv.leader, tr.dest, { op: 'receive', chunk: c.chunk }, ct);
        records += got.records;
        chunks++;
        after = c.next;
        if (chunks % 20 === 0) say(`group ${tr.dest}: ${records} records received`);
      }
      say(`group ${tr.dest}: ${records} records received in ${chunks} chunks; committing TransferAccept`);
      try {
        await call(config, dv.leader, tr.dest, { op: 'accept' }, ct);
      } catch (e) {
        // A digest that differs (a chunk lost, the destination's store rolled back): stream again.
        if (e instanceof BkvError && e.code === 'VERIFICATION_FAILED' && rounds < 5) {
          say(`group ${tr.dest}: ${e.message}; streaming the range again`);
          continue;
        }
        throw e;
      }
    } catch (e) {
      if (!transient(e) && !(e instanceof BkvError && e.code === 'CONFLICT' && (e.details.reason === 'refused-at-apply' || e.details.reason === 'wrong-phase'))) throw e;
      lastError = (e as Error).message;
      await sleep(200);
    }
  }
  throw new BkvError('UNAVAILABLE', `the transfer did not finish within ${opts.timeoutMs ?? 120_000} ms (${lastError || 'no progress'}); it stays open: run the command again with --resume`);
}
