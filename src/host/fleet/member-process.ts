/**
 * One vault member as an operating-system process (`bkv member start`): its identity and the fleet
 * secrets, a Raft node and driver over a TCP peer transport, the replicated vault state machine, and
 * the vault core whose replicator is the driver. It serves the member API (docs/api.md, "Member
 * API") on its apiPort and consensus frames on its raftPort.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BkvError, isBkvError, type ErrorCode } from '../../shared/errors.js';
import type { RaftDriver } from '../../trusted/consensus/driver.js';
import type { RaftNode } from '../../trusted/consensus/node.js';
import type { RaftConfig } from '../../trusted/consensus/types.js';
import { DEFAULT_POLICY, type VaultCore } from '../../trusted/core/vault-core.js';
import { isEmpty } from '../../trusted/groups/range.js';
import { exportChunks, parseExport } from '../record-store/export-stream.js';
import type { PeerExport } from '../record-store/store-writer.js';
import { fromB64, toB64 } from '../../shared/protocol/messages.js';
import { decodeMemberIdentity, fleetGroups, memberApiUrl, memberPublicKeys, memberStorageKey, readFleetConfig, type FleetConfig } from './config.js';
import { openGroupReplica, type GroupReplica } from './group-replica.js';
import { PeerTransport } from './peer-transport.js';
import { serveRelayStream, type RelayAnswer } from './relay-stream.js';
import { registerTransferApi } from './transfer-api.js';
import { loadVaultCode } from '../vault-code.js';
import { catchUpReason } from './health.js';
import { createMemberMetrics } from './member-metrics.js';
import { MemberMigration } from '../migration/fleet-member.js';
import type { GroupStatus, MemberStatus } from './member-status.js';
import { nativeHmacSha256, nativeSealCrypto } from './native-crypto.js';
import { errorBody, installHttpConventions } from '../../node/http-errors.js';

/** The header in which the gateway names the account it authenticated. */
export const ACCOUNT_HEADER = 'x-bkv-account';
/** The header of a 503 `not-leader` answer naming the member this one believes leads. */
export const LEADER_HEADER = 'x-bkv-leader';
/**
 * In a fleet of replication groups: on a request, the group the gateway believes serves the account
 * (else the member's first guess, group 0); on an answer, the group that served it, whose leader a
 * `not-leader` answer names, or that owns the account (421 WRONG_GROUP).
 */
export const GROUP_HEADER = 'x-bkv-group';

export interface MemberOptions {
  /** The member directory: D/member-<id>. */
  dir: string;
  /** Path of fleet.json. */
  fleetPath: string;
  logger?: Logger;
  raftConfig?: Partial<RaftConfig>;
  /**
   * A proposal that is not committed by then fails with UNAVAILABLE, outcome unknown (default
   * 3000 ms). It bounds how long a request waits when it was forwarded to a leader that just died.
   */
  requestTimeoutMs?: number;
  /** Record store URL: `sqlite:<path>` (default: `records.sqlite` in the member directory) or `postgres://…`. */
  store?: string;
}

export interface RunningMember {
  id: number;
  url: string;
  config: FleetConfig;
  node: RaftNode;
  driver: RaftDriver;
  /** Group 0's (the only group's, in a fleet without groups) node, driver and core. */
  core: VaultCore;
  /** Every replication group this member serves in, by group id. */
  groups: GroupReplica[];
  status(): MemberStatus;
  close(): Promise<void>;
}

/**
 * A member process's consensus timing: a 20 ms tick, heartbeats every 100 ms, election timeouts of
 * 500-1000 ms (etcd's ratio of one to five and above). An idle fleet's CPU is mostly these wake-ups
 * (ticks, and a heartbeat and its answer per peer), which every recovery pays a share of: with a
 * 10 ms tick, 60 ms heartbeats and 300-600 ms timeouts five idle members used about 0.45 of a core
 * on the 2-core benchmark machine (BENCHMARKS.md, "Fleet CPU"). Ticks are sparse (docs/consensus.md,
 * "Sparse ticks"): a member ticks only when its node has timed work due, so an idle follower wakes
 * about once per election timeout; `BKV_DENSE_TICKS=1` ticks every `tickMs` instead (comparisons).
 */
export const MEMBER_TIMING = { tickMs: 20, sparseTicks: !process.env.BKV_DENSE_TICKS, heartbeatInterval: 100, electionTimeoutMin: 500, electionTimeoutMax: 1000 } as const;
/**
 * A follower writes committed batches to its record store in groups: a batch waits at most
 * `maxDelayMs` for later ones, at most `maxBatches` per transaction. The leader writes each at once,
 * and a member that needs its store (it became leader) writes what is queued at once.
 */
export const STORE_GROUP = { maxDelayMs: 100, maxBatches: 16 } as const;

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  MALFORMED: 400, TAMPERED: 400, USAGE: 400, UNAUTHORIZED: 401, CONFLICT: 409, VERIFICATION_FAILED: 422, WRONG_GROUP: 421, RATE_LIMITED: 429, UNAVAILABLE: 503,
};

/** A range of slots as `[start, end)` in hex, 8 digits each (the end of the space is 100000000), or `empty`. */
export function slotRangeText(r: { start: number; end: number }): string {
  const h = (v: number) => v.toString(16).padStart(8, '0');
  return r.end <= r.start ? 'empty' : `[${h(r.start)}, ${h(r.end)})`;
}

/** CSPRNG words for the consensus node (sealing nonces, election timeouts), drawn 1 KiB at a time. */
const rngPool = new Uint32Array(256);
let rngLeft = 0;
function randomU32(): number {
  if (rngLeft === 0) {
    crypto.getRandomValues(rngPool);
    rngLeft = rngPool.length;
  }
  rngLeft--;
  const v = rngPool[rngLeft]!;
  rngPool[rngLeft] = 0; // a word is handed out once
  return v;
}

export async function startMember(opts: MemberOptions): Promise<RunningMember> {
  const log = opts.logger;
  const config = await readFleetConfig(opts.fleetPath);
  const identity = decodeMemberIdentity(new Uint8Array(await readFile(join(opts.dir, 'member.bin'))));
  const me = config.members.find((m) => m.id === identity.id);
  if (!me) throw new BkvError('USAGE', `member ${identity.id} is not in ${opts.fleetPath}`);
  if (toB64(memberPublicKeys(identity).identityKey) !== me.identityKey) {
    throw new BkvError('USAGE', `member.bin does not hold the identity fleet.json lists for member ${me.id}`);
  }
  // The code this member runs: for a ceremony-deployed fleet, the measured build, checked before
  // any secret is loaded (a mismatch refuses to start).
  const vault = await loadVaultCode(opts.fleetPath);
  const secrets = vault.code.decodeFleetSecrets(new Uint8Array(await readFile(join(opts.dir, 'fleet-secrets.bin'))));
  const clusterId = fromB64(config.clusterId, 'clusterId');
  const groups = fleetGroups(config);
  const startedAt = performance.now();

  const nodeOptions = {
    identity: vault.code.consensus.identityFromSeed(me.id, identity.identitySeed),
    members: new Map(config.members.map((m) => [m.id, fromB64(m.identityKey, 'identityKey')])),
    clusterId,
    storageKey: memberStorageKey(identity, clusterId),
    rng: randomU32,
    now: performance.now(),
    hmacSha256: nativeHmacSha256,
    sealCrypto: nativeSealCrypto,
    // Snapshots hold only the record tree's root: compaction is cheap, whatever the number of users.
    config: {
      snapshotThreshold: 4096,
      heartbeatInterval: MEMBER_TIMING.heartbeatInterval,
      electionTimeoutMin: MEMBER_TIMING.electionTimeoutMin,
      electionTimeoutMax: MEMBER_TIMING.electionTimeoutMax,
      ...opts.raftConfig,
    },
  };

  // ------------------------------------------------------------------ metrics
  // Every series carries the replication group it is about (`group="0"` in a fleet without groups).
  const replicas: GroupReplica[] = [];
  const metrics = createMemberMetrics(replicas);
  // ------------------------------------------------------------------ consensus
  const transport = new PeerTransport(
    new Map(config.members.filter((m) => m.id !== me.id).map((m) => [m.id, { host: m.host, port: m.raftPort }])),
    (bytes, g) => replicas[g]?.driver.receive(bytes),
    groups.multi,
  );
  const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  try {
    for (let g = 0; g < groups.total; g++) {
      const group = String(g);
      replicas.push(await openGroupReplica({
        code: vault.code,
        dir: opts.dir,
        group: g,
        groups,
        store: opts.store,
        secrets,
        node: nodeOptions,
        env: {
          now: () => performance.now(),
          setTimer(delayMs, fn) {
            const t = setTimeout(fn, delayMs);
            return { cancel: () => clearTimeout(t) };
          },
          send: (to, bytes) => transport.send(to, bytes, g),
          defer: (fn) => setImmediate(fn),
        },
        policy: { ...DEFAULT_POLICY, ...config.policy },
        requestTimeoutMs: opts.requestTimeoutMs ?? 3000,
        tickMs: MEMBER_TIMING.tickMs,
        sparseTicks: MEMBER_TIMING.sparseTicks,
        storeGroup: STORE_GROUP,
        peerExports: () => peerExports(g),
        onApplied: () => metrics.applied.inc({ group }),
        wrap: metrics.measured(group),
        onEvent: (line) => log?.warn({ member: me.id, group: g }, line),
      }));
    }
  } catch (e) {
    for (const r of replicas) await r.close();
    throw e;
  }
  const first = replicas[0]!;
  log?.info({ measurement: vault.measurement ?? 'development build (no measurement)', groups: groups.total }, 'vault core loaded');
  /** Peers' exports of group g's store, leader first: what a member repairs its store from. */
  async function* peerExports(g: number): AsyncGenerator<PeerExport> {
    const leader = replicas[g]?.node.status().leaderId ?? null;
    const peers = config.members.filter((m) => m.id !== me!.id).sort((a, b) => (a.id === leader ? -1 : b.id === leader ? 1 : a.id - b.id));
    for (const p of peers) {
      const url = new URL('/v1/store/export', memberApiUrl(p));
      if (groups.multi) url.searchParams.set('group', String(g));
      const res = await fetch(url, { signal: AbortSignal.timeout(600_000) }).catch((e: Error) => e);
      if (res instanceof Error || !res.ok || !res.body) {
        log?.warn({ member: me!.id, peer: p.id, group: g }, `store export from member ${p.id} unavailable`);
        continue;
      }
      const body = res.body as unknown as AsyncIterable<Uint8Array>;
      const exp = await parseExport(body).catch(() => null);
      if (exp) yield { peer: `member ${p.id}`, ...exp };
    }
  }
  // A fleet directory of release 0.1 (one group): `bkv up` left the records to import in pending-import.bin.
  const migration = groups.multi ? null : await MemberMigration.open(opts.dir, secrets.storageKey);

  const groupStatus = (r: GroupReplica): GroupStatus => {
    const { leaderId, id: _id, bootNote: _b, ...s } = r.node.status();
    const store = { ...r.records.status(), location: r.storeLocation };
    const gs = r.stateMachine.group;
    const owned = gs?.owned ?? { start: 0, end: 2 ** 32 };
    return {
      group: r.group,
      ...s,
      range: { start: owned.start, end: owned.end, text: slotRangeText(owned) },
      serving: gs ? !isEmpty(gs.servedRange) : true,
      leader: leaderId,
      lag: Math.max(0, s.leaderCommit - s.lastApplied),
      catchingUp: catchUpReason({ ...s, store }),
      records: r.stateMachine.count,
      store,
      transfer: {
        nextSeq: gs?.nextSeq ?? 1,
        outgoing: gs?.outgoing ? { seq: gs.outgoing.seq, dest: gs.outgoing.dest, start: gs.outgoing.range.start, end: gs.outgoing.range.end } : null,
        incoming: gs?.incoming ? { source: gs.incoming.source, seq: gs.incoming.seq, start: gs.incoming.range.start, end: gs.incoming.range.end } : null,
        decided: gs ? [...gs.lastFrom].map(([source, l]) => ({ source, seq: l.seq, accepted: l.accepted })) : [],
      },
      trusted: { root: Buffer.from(r.stateMachine.root).toString('hex'), batch: r.stateMachine.lastBatchIndex },
    };
  };
  const status = (): MemberStatus => {
    const { leaderId, ...s } = first.node.status();
    const store = { ...first.records.status(), location: first.storeLocation };
    const core: Record<string, number> = {};
    for (const r of replicas) for (const [k, v] of Object.entries(r.core.stats)) core[k] = (core[k] ?? 0) + v;
    return {
      ...s,
      fleetId: config.fleetId,
      site: me.site,
      leader: leaderId,
      lag: Math.max(0, s.leaderCommit - s.lastApplied),
      catchingUp: catchUpReason({ ...s, store }),
      records: first.stateMachine.count,
      store,
      core,
      trusted: { root: Buffer.from(first.stateMachine.root).toString('hex'), batch: first.stateMachine.lastBatchIndex, snapshotBytes: first.stateMachine.snapshot().length },
      migration: migration?.status() ?? null,
      pid: process.pid,
      uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
      ...(groups.multi ? { groups: replicas.map(groupStatus) } : {}),
    };
  };

  // ------------------------------------------------------------------ member API
  let closing = false;
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 }) as unknown as FastifyInstance;
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  installHttpConventions(app);
  app.setErrorHandler((err: unknown, _req, reply) => {
    const a = errorAnswer(err);
    if (a.leader !== null) reply.header(LEADER_HEADER, String(a.leader));
    if (a.group !== null) reply.header(GROUP_HEADER, String(a.group));
    if (a.retryAfter !== null) reply.header('retry-after', String(a.retryAfter));
    return reply.code(a.status).type('application/json').send(Buffer.from(a.body));
  });

  /**
   * What the member API answers for `err` (HTTP and relay stream alike): `not-leader` is 503 naming
   * the member this one believes leads the group; WRONG_GROUP is 421 naming the owner group; a
   * range in transfer is 503 with a retry.
   */
  const errorAnswer = (err: unknown): RelayAnswer & { group: number | null; retryAfter: number | null } => {
    const json = (status: number, body: unknown, extra: { leader?: number | null; group?: number | null; retryAfter?: number | null } = {}) => ({
      status, leader: extra.leader ?? null, group: extra.group ?? null, retryAfter: extra.retryAfter ?? null, body: Buffer.from(JSON.stringify(body)),
    });
    const group = isBkvError(err) && typeof err.details.group === 'number' ? err.details.group : null;
    if (isBkvError(err) && err.details.reason === 'not-leader') {
      const hint = typeof err.details.leaderHint === 'number' ? err.details.leaderHint : null;
      return json(503, errorBody(err.code, err.message, { reason: 'not-leader', leader: hint, ...(group !== null ? { group } : {}) }), { leader: hint, group });
    }
    if (isBkvError(err, 'WRONG_GROUP')) {
      const owner = typeof err.details.owner === 'number' ? err.details.owner : null;
      if (err.details.moving === true) {
        return json(503, errorBody('UNAVAILABLE', `${err.message}; the range is moving between groups, try again shortly`, { reason: 'moving', group: owner }), { group: owner, retryAfter: 1 });
      }
      return json(421, errorBody('WRONG_GROUP', err.message, { group, owner }), { group: owner });
    }
    if (isBkvError(err)) {
      const wait = err.details.retryAfterSeconds;
      const reason = typeof err.details.reason === 'string' ? { reason: err.details.reason } : {};
      return json(HTTP_STATUS[err.code] ?? 500, errorBody(err.code, err.message, reason), { retryAfter: typeof wait === 'number' ? wait : null, group });
    }
    const e = err as { statusCode?: number; message?: string };
    if (e.statusCode && e.statusCode < 500) return json(e.statusCode, errorBody('MALFORMED', e.message ?? 'bad request'));
    log?.error({ err }, 'unexpected member error');
    return json(500, errorBody('INTERNAL', 'internal error'));
  };
  const replicaOf = (g: number | null): GroupReplica => {
    if (g === null) return first;
    const r = replicas[g];
    if (!r) throw new BkvError('USAGE', `this fleet has no replication group ${g} (groups 0 to ${groups.total - 1})`);
    return r;
  };
  /** A not-leader error that names the group. */
  const tagGroup = (err: unknown, g: number): unknown => {
    if (isBkvError(err) && err.details.group === undefined) (err.details as Record<string, unknown>).group = g;
    return err;
  };
  /**
   * One relayed vault request, over HTTP (`POST /v1/vault`) or the relay stream, for the group the
   * gateway names (its first guess: group 0). A group that refuses the account as not its own names
   * the owner; this member hands the request to its own node of that group once (which serves it if
   * it leads there, else names that group's leader). Answers the group that served it.
   */
  const vaultRequest = async (account: string, body: Uint8Array, hint: number | null): Promise<{ group: number; body: Uint8Array }> => {
    if (account.length === 0) throw new BkvError('USAGE', `missing ${ACCOUNT_HEADER}`);
    let r = replicaOf(hint);
    for (let hop = 0; ; hop++) {
      const s = r.node.status();
      // A member that cannot reach a leader sends the gateway elsewhere before doing any work.
      if (closing || s.learner || s.leaderId === null) {
        throw tagGroup(new BkvError('UNAVAILABLE', closing ? 'member shutting down' : `member has no leader in group ${r.group}`), r.group);
      }
      if (migration?.active) throw new BkvError('UNAVAILABLE', 'the fleet is importing the records of release 0.1; try again shortly', { reason: 'migrating' });
      try {
        return { group: r.group, body: await r.core.handle(account, body) };
      } catch (err) {
        const owner = isBkvError(err, 'WRONG_GROUP') && err.details.moving !== true && typeof err.details.owner === 'number' ? err.details.owner : null;
        if (hop === 0 && owner !== null && owner !== r.group && replicas[owner]) {
          metrics.wrongGroup.inc({ outcome: 'rerouted' });
          r = replicas[owner]!;
          continue;
        }
        if (isBkvError(err, 'WRONG_GROUP')) metrics.wrongGroup.inc({ outcome: 'returned' });
        throw tagGroup(err, r.group);
      }
    }
  };
  const groupHeader = (v: unknown): number | null => {
    if (v === undefined) return null;
    const g = Number(v);
    if (typeof v !== 'string' || !/^\d{1,2}$/.test(v) || !Number.isInteger(g)) throw new BkvError('USAGE', `${GROUP_HEADER} must be a group number`);
    return g;
  };
  app.post('/v1/vault', async (req, reply) => {
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account.length === 0) throw new BkvError('USAGE', `missing ${ACCOUNT_HEADER}`);
    if (!Buffer.isBuffer(req.body)) throw new BkvError('MALFORMED', 'send the sealed request as application/octet-stream');
    const out = await vaultRequest(account, new Uint8Array(req.body), groupHeader(req.headers[GROUP_HEADER]));
    if (groups.multi) reply.header(GROUP_HEADER, String(out.group));
    return reply.type('application/octet-stream').send(Buffer.from(out.body));
  });
  // The same requests over one persistent connection per gateway (relay-stream.ts), answered as
  // `POST /v1/vault` would answer them: the status, the leader hint, the group and the body.
  const closeRelayStreams = serveRelayStream(app.server, async (account, envelope, group) => {
    try {
      if (group !== null && !replicas[group]) throw new BkvError('USAGE', `this fleet has no replication group ${group}`);
      const out = await vaultRequest(account, envelope, group);
      return { status: 200, leader: null, group: out.group, body: out.body };
    } catch (err) {
      return errorAnswer(err);
    }
  });
  app.post('/v1/raft', async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) throw new BkvError('MALFORMED', 'send the envelope as application/octet-stream');
    const g = groupHeader(req.headers[GROUP_HEADER]) ?? 0;
    replicaOf(g).driver.receive(new Uint8Array(req.body));
    return reply.code(204).send();
  });
  app.get('/v1/status', async () => status());
  // A peer repairing its record store streams this member's whole store of a group (checked by the peer's core).
  app.get('/v1/store/export', async (req, reply) => {
    const q = (req.query ?? {}) as { group?: string };
    const r = replicaOf(q.group === undefined ? null : groupHeader(q.group));
    const exp = await r.store.export(1024);
    reply.type('application/octet-stream');
    return reply.send(Readable.from(exportChunks(exp), { objectMode: false }));
  });
  // Range transfers between groups (docs/groups.md), driven by `bkv fleet move` / `split`.
  registerTransferApi(app, { replicaOf, multi: groups.multi, tagGroup });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.scrape(transport.stats));
  });

  const closeReplicas = async () => {
    for (const r of replicas) await r.close();
  };
  try {
    await transport.listen({ host: me.host, port: me.raftPort });
  } catch (e) {
    await closeReplicas();
    throw e;
  }
  try {
    await app.listen({ host: me.host, port: me.apiPort });
  } catch (e) {
    await transport.close();
    await closeReplicas();
    throw e;
  }
  for (const r of replicas) r.driver.start();
  log?.info({ member: me.id, boot: first.node.bootNote, api: memberApiUrl(me), raftPort: me.raftPort, store: first.storeLocation, groups: groups.total }, 'member started');
  void migration?.run({
    node: first.node,
    state: first.stateMachine,
    reader: first.records.reader,
    batcher: first.batcher,
    storageKey: secrets.storageKey,
    wait,
    say: (line) => log?.info({ member: me.id, migration: migration.status() }, line),
    warn: (line) => log?.warn({ member: me.id }, line),
  });

  // Role changes in the log.
  const last = replicas.map(() => ({ role: '', term: -1 }));
  const watch = setInterval(() => {
    for (const r of replicas) {
      const s = r.node.status();
      const l = last[r.group]!;
      if (s.role !== l.role || (s.role === 'leader' && s.term !== l.term)) {
        log?.info({ member: me.id, ...(groups.multi ? { group: r.group } : {}), role: s.role, term: s.term, leader: s.leaderId, commitIndex: s.commitIndex }, 'role');
        l.role = s.role;
        l.term = s.term;
      }
    }
  }, 200);
  watch.unref();

  return {
    id: me.id,
    url: memberApiUrl(me),
    config,
    node: first.node,
    driver: first.driver,
    core: first.core,
    groups: replicas,
    status,
    async close() {
      if (closing) return;
      closing = true;
      migration?.stop();
      clearInterval(watch);
      closeRelayStreams();
      await app.close();
      for (const r of replicas) r.driver.stop();
      await transport.close();
      await closeReplicas();
    },
  };
}
