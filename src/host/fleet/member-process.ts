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
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BkvError, isBkvError, type ErrorCode } from '../../shared/errors.js';
import { identityFromSeed } from '../../trusted/consensus/auth.js';
import { RaftDriver, type DriverEnv } from '../../trusted/consensus/driver.js';
import { RaftNode } from '../../trusted/consensus/node.js';
import type { RaftConfig } from '../../trusted/consensus/types.js';
import { decodeFleetSecrets } from '../../trusted/core/fleet-secrets.js';
import type { Replicator } from '../../trusted/core/replication.js';
import { DEFAULT_POLICY, VaultCore } from '../../trusted/core/vault-core.js';
import type { RecordState } from '../../trusted/records/record-state.js';
import { exportChunks, parseExport } from '../record-store/export-stream.js';
import { displayStoreUrl, openRecordStore } from '../record-store/index.js';
import { MemberRecords } from '../record-store/member-records.js';
import type { PeerExport } from '../record-store/store-writer.js';
import { fromB64, toB64 } from '../../shared/protocol/messages.js';
import { decodeMemberIdentity, memberApiUrl, memberPublicKeys, memberStorageKey, readFleetConfig, type FleetConfig } from './config.js';
import { PeerTransport } from './peer-transport.js';
import { serveRelayStream, type RelayAnswer } from './relay-stream.js';
import { loadVaultCode } from '../vault-code.js';
import { MemberStorage } from './member-storage.js';
import { catchUpReason } from './health.js';
import { MemberMigration } from '../migration/fleet-member.js';
import type { MemberStatus } from './member-status.js';
import { nativeHmacSha256, nativeSealCrypto, nodeCoreEnv } from './native-crypto.js';
import { errorBody, installHttpConventions } from '../../node/http-errors.js';

/** The header in which the gateway names the account it authenticated. */
export const ACCOUNT_HEADER = 'x-bkv-account';
/** The header of a 503 `not-leader` answer naming the member this one believes leads. */
export const LEADER_HEADER = 'x-bkv-leader';

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
  core: VaultCore;
  status(): MemberStatus;
  close(): Promise<void>;
}

/**
 * A member process's consensus timing: a 20 ms tick, heartbeats every 100 ms, election timeouts of
 * 500-1000 ms (etcd's ratio of one to five and above). An idle fleet's CPU is mostly these wake-ups
 * (ticks, and a heartbeat and its answer per peer), which every recovery pays a share of: with a
 * 10 ms tick, 60 ms heartbeats and 300-600 ms timeouts five idle members used about 0.45 of a core
 * on the 2-core benchmark machine (BENCHMARKS.md, "Fleet CPU").
 */
export const MEMBER_TIMING = { tickMs: 20, heartbeatInterval: 100, electionTimeoutMin: 500, electionTimeoutMax: 1000 } as const;
/**
 * A follower writes committed batches to its record store in groups: a batch waits at most
 * `maxDelayMs` for later ones, at most `maxBatches` per transaction. The leader writes each at once,
 * and a member that needs its store (it became leader) writes what is queued at once.
 */
export const STORE_GROUP = { maxDelayMs: 100, maxBatches: 16 } as const;

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = { MALFORMED: 400, TAMPERED: 400, USAGE: 400, UNAUTHORIZED: 401, RATE_LIMITED: 429, UNAVAILABLE: 503 };

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
  const storage = await MemberStorage.open(join(opts.dir, 'state'));
  const stateMachine: RecordState = new vault.code.RecordState();
  const storeUrl = opts.store ?? `sqlite:${join(opts.dir, 'records.sqlite')}`;
  const storeLocation = displayStoreUrl(storeUrl);
  const store = await openRecordStore(storeUrl);
  const startedAt = performance.now();

  const nodeOptions = {
    identity: vault.code.consensus.identityFromSeed(me.id, identity.identitySeed),
    members: new Map(config.members.map((m) => [m.id, fromB64(m.identityKey, 'identityKey')])),
    clusterId,
    storageKey: memberStorageKey(identity, clusterId),
    counter: storage.counter,
    rng: randomU32,
    boot: storage.bootState(),
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
  const registry = new Registry();
  // The event-loop delay monitor samples every 100 ms, not prom-client's 10 ms: each sample is a timer
  // wake-up of an otherwise idle process.
  collectDefaultMetrics({ register: registry, prefix: 'bkv_member_', eventLoopMonitoringPrecision: 100 });
  const roleCode = { follower: 0, precandidate: 1, candidate: 2, leader: 3 } as const;
  new Gauge({
    name: 'bkv_member_raft',
    help: 'Raft state of this member: role (0 follower, 1 pre-candidate, 2 candidate, 3 leader), term, commit index, highest commit index a leader told it, last applied, learner, catching up (1: behind the leader or its record store not in step), elections started, records, last batch in the record store and in the core, store repairs',
    labelNames: ['field'] as const,
    registers: [registry],
    collect() {
      const s = node.status();
      this.set({ field: 'role' }, roleCode[s.role]);
      this.set({ field: 'term' }, s.term);
      this.set({ field: 'commit_index' }, s.commitIndex);
      this.set({ field: 'leader_commit' }, s.leaderCommit);
      this.set({ field: 'last_applied' }, s.lastApplied);
      this.set({ field: 'learner' }, s.learner ? 1 : 0);
      this.set({ field: 'catching_up' }, catchUpReason({ ...s, store: records.status() }) === null ? 0 : 1);
      this.set({ field: 'elections' }, node.stats.elections);
      this.set({ field: 'records' }, stateMachine.count);
      this.set({ field: 'store_batch' }, records.status().storeBatch);
      this.set({ field: 'core_batch' }, stateMachine.lastBatchIndex);
      this.set({ field: 'store_repairs' }, records.status().repairs);
    },
  });
  const storeStates = ['in-step', 'writing', 'gap', 'repairing', 'corrupt'] as const;
  new Gauge({
    name: 'bkv_member_record_store',
    help: "This member's record store: last batch in the store (store_batch) and in the core (core_batch), records, repairs, and state (1 on the current state's series)",
    labelNames: ['field', 'engine', 'state'] as const,
    registers: [registry],
    collect() {
      const r = records.status();
      this.reset();
      this.set({ field: 'store_batch', engine: r.engine, state: '' }, r.storeBatch);
      this.set({ field: 'core_batch', engine: r.engine, state: '' }, r.coreBatch);
      this.set({ field: 'records', engine: r.engine, state: '' }, r.records);
      this.set({ field: 'repairs', engine: r.engine, state: '' }, r.repairs);
      this.set({ field: 'written', engine: r.engine, state: '' }, r.written);
      this.set({ field: 'transactions', engine: r.engine, state: '' }, r.transactions);
      for (const st of storeStates) this.set({ field: 'state', engine: r.engine, state: st }, r.state === st ? 1 : 0);
    },
  });
  const proposals = new Counter({ name: 'bkv_member_proposals_total', help: 'Proposals by outcome', labelNames: ['outcome'] as const, registers: [registry] });
  const applied = new Counter({ name: 'bkv_member_applied_entries_total', help: 'Committed entries applied on this member', registers: [registry] });
  const commitLatency = new Histogram({
    name: 'bkv_member_commit_seconds',
    help: 'Time from proposal on this member to commit and apply',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const transportGauge = new Gauge({ name: 'bkv_member_transport', help: 'Peer transport frames', labelNames: ['event'] as const, registers: [registry] });
  let core: VaultCore | null = null;
  new Gauge({
    name: 'bkv_core_events',
    help: 'Counters reported by the vault core since this process started (requests, rejected, credentialResponses, recoveries)',
    labelNames: ['event'] as const,
    registers: [registry],
    collect() {
      if (core) for (const [event, v] of Object.entries(core.stats)) this.set({ event }, v);
    },
  });

  // ------------------------------------------------------------------ consensus
  const transport = new PeerTransport(
    new Map(config.members.filter((m) => m.id !== me.id).map((m) => [m.id, { host: m.host, port: m.raftPort }])),
    (bytes) => driver.receive(bytes),
  );
  const env: DriverEnv = {
    now: () => performance.now(),
    setTimer(delayMs, fn) {
      const t = setTimeout(fn, delayMs);
      return { cancel: () => clearTimeout(t) };
    },
    send: (to, bytes) => transport.send(to, bytes),
    persist: storage.persist,
    defer: (fn) => setImmediate(fn),
  };
  const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const member = vault.code.createVaultMember({
    stateMachine,
    node: nodeOptions,
    env,
    driver: {
      requestTimeoutMs: opts.requestTimeoutMs ?? 3000,
      tickMs: MEMBER_TIMING.tickMs,
      onOutput(o) {
        if (o.type === 'committed') applied.inc();
        records.onOutput(o);
      },
    },
  });
  const node = member.node;
  const driver: RaftDriver = member.driver;
  const records: MemberRecords = new MemberRecords(store, stateMachine, {
    wait,
    group: { ...STORE_GROUP, when: () => node.status().role !== 'leader' },
    peerExports: () => peerExports(),
    onEvent: (line) => log?.warn({ member: me.id }, line),
  });
  await records.open();
  /** Peers' store exports, leader first: what a member repairs its store from. */
  async function* peerExports(): AsyncGenerator<PeerExport> {
    const leader = node.status().leaderId;
    const peers = config.members.filter((m) => m.id !== me!.id).sort((a, b) => (a.id === leader ? -1 : b.id === leader ? 1 : a.id - b.id));
    for (const p of peers) {
      const res = await fetch(new URL('/v1/store/export', memberApiUrl(p)), { signal: AbortSignal.timeout(600_000) }).catch((e: Error) => e);
      if (res instanceof Error || !res.ok || !res.body) {
        log?.warn({ member: me!.id, peer: p.id }, `store export from member ${p.id} unavailable`);
        continue;
      }
      const body = res.body as unknown as AsyncIterable<Uint8Array>;
      const exp = await parseExport(body).catch(() => null);
      if (exp) yield { peer: `member ${p.id}`, ...exp };
    }
  }
  const measured = (r: Replicator): Replicator => ({
    async propose(entry) {
      const stop = commitLatency.startTimer();
      try {
        const out = await r.propose(entry);
        stop();
        proposals.inc({ outcome: 'committed' });
        return out;
      } catch (e) {
        proposals.inc({ outcome: 'failed' });
        throw e;
      }
    },
    readBarrier: () => r.readBarrier(),
  });
  let batcher;
  ({ core, batcher } = await member.createCore({
    secrets,
    env: nodeCoreEnv,
    policy: { ...DEFAULT_POLICY, ...config.policy },
    reader: records.reader,
    wait,
    wrap: measured,
  }));
  log?.info({ measurement: vault.measurement ?? 'development build (no measurement)' }, 'vault core loaded');
  const vaultCore = core;
  // A fleet directory of release 0.1: `bkv up` left the records to import in pending-import.bin.
  const migration = await MemberMigration.open(opts.dir, secrets.storageKey);

  const status = (): MemberStatus => {
    const { leaderId, ...s } = node.status();
    const store = { ...records.status(), location: storeLocation };
    return {
      ...s,
      fleetId: config.fleetId,
      site: me.site,
      leader: leaderId,
      lag: Math.max(0, s.leaderCommit - s.lastApplied),
      catchingUp: catchUpReason({ ...s, store }),
      records: stateMachine.count,
      store,
      core: { ...vaultCore.stats },
      trusted: { root: Buffer.from(stateMachine.root).toString('hex'), batch: stateMachine.lastBatchIndex, snapshotBytes: stateMachine.snapshot().length },
      migration: migration?.status() ?? null,
      pid: process.pid,
      uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
    };
  };

  // ------------------------------------------------------------------ member API
  let closing = false;
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 }) as unknown as FastifyInstance;
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  installHttpConventions(app);
  app.setErrorHandler((err: unknown, _req, reply) => {
    // Not the leader: 503 naming the member this one believes leads, for the gateway to go there.
    if (isBkvError(err) && err.details.reason === 'not-leader') {
      const hint = err.details.leaderHint;
      if (typeof hint === 'number') reply.header(LEADER_HEADER, String(hint));
      return reply.code(503).send(errorBody(err.code, err.message, { reason: 'not-leader', leader: typeof hint === 'number' ? hint : null }));
    }
    if (isBkvError(err)) {
      const wait = err.details.retryAfterSeconds;
      if (typeof wait === 'number') reply.header('retry-after', String(wait));
      return reply.code(HTTP_STATUS[err.code] ?? 500).send(errorBody(err.code, err.message));
    }
    const e = err as { statusCode?: number; message?: string };
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send(errorBody('MALFORMED', e.message ?? 'bad request'));
    log?.error({ err }, 'unexpected member error');
    return reply.code(500).send(errorBody('INTERNAL', 'internal error'));
  });

  /** What the error handler above answers for `err`, as a relay-stream answer (no retry-after). */
  const relayErrorAnswer = (err: unknown): RelayAnswer => {
    const json = (status: number, leader: number | null, body: unknown): RelayAnswer => ({ status, leader, body: Buffer.from(JSON.stringify(body)) });
    if (isBkvError(err) && err.details.reason === 'not-leader') {
      const hint = typeof err.details.leaderHint === 'number' ? err.details.leaderHint : null;
      return json(503, hint, errorBody(err.code, err.message, { reason: 'not-leader', leader: hint }));
    }
    if (isBkvError(err)) return json(HTTP_STATUS[err.code] ?? 500, null, errorBody(err.code, err.message));
    log?.error({ err }, 'unexpected member error');
    return json(500, null, errorBody('INTERNAL', 'internal error'));
  };
  /** One relayed vault request, over HTTP (`POST /v1/vault`) or the relay stream. */
  const vaultRequest = async (account: string, body: Uint8Array): Promise<Uint8Array> => {
    if (account.length === 0) throw new BkvError('USAGE', `missing ${ACCOUNT_HEADER}`);
    const s = node.status();
    // A member that cannot reach a leader sends the gateway elsewhere before doing any work.
    if (closing || s.learner || s.leaderId === null) throw new BkvError('UNAVAILABLE', closing ? 'member shutting down' : 'member has no leader');
    if (migration?.active) throw new BkvError('UNAVAILABLE', 'the fleet is importing the records of release 0.1; try again shortly', { reason: 'migrating' });
    return vaultCore.handle(account, body);
  };
  app.post('/v1/vault', async (req, reply) => {
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account.length === 0) throw new BkvError('USAGE', `missing ${ACCOUNT_HEADER}`);
    if (!Buffer.isBuffer(req.body)) throw new BkvError('MALFORMED', 'send the sealed request as application/octet-stream');
    const out = await vaultRequest(account, new Uint8Array(req.body));
    return reply.type('application/octet-stream').send(Buffer.from(out));
  });
  // The same requests over one persistent connection per gateway (relay-stream.ts), answered as
  // `POST /v1/vault` would answer them: the status, the leader hint and the body.
  const closeRelayStreams = serveRelayStream(app.server, async (account, envelope) => {
    try {
      return { status: 200, leader: null, body: await vaultRequest(account, envelope) };
    } catch (err) {
      return relayErrorAnswer(err);
    }
  });
  app.post('/v1/raft', async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) throw new BkvError('MALFORMED', 'send the envelope as application/octet-stream');
    driver.receive(new Uint8Array(req.body));
    return reply.code(204).send();
  });
  app.get('/v1/status', async () => status());
  // A peer repairing its record store streams this member's whole store (checked by the peer's core).
  app.get('/v1/store/export', async (_req, reply) => {
    const exp = await store.export(1024);
    reply.type('application/octet-stream');
    return reply.send(Readable.from(exportChunks(exp), { objectMode: false }));
  });
  app.get('/metrics', async (_req, reply) => {
    for (const [event, v] of Object.entries(transport.stats)) transportGauge.set({ event }, v);
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  await transport.listen({ host: me.host, port: me.raftPort });
  try {
    await app.listen({ host: me.host, port: me.apiPort });
  } catch (e) {
    await transport.close();
    throw e;
  }
  driver.start();
  log?.info({ member: me.id, boot: node.bootNote, api: memberApiUrl(me), raftPort: me.raftPort, store: storeLocation }, 'member started');
  void migration?.run({
    node,
    state: stateMachine,
    reader: records.reader,
    batcher,
    storageKey: secrets.storageKey,
    wait,
    say: (line) => log?.info({ member: me.id, migration: migration.status() }, line),
    warn: (line) => log?.warn({ member: me.id }, line),
  });

  // Role changes in the log.
  let lastRole = '';
  let lastTerm = -1;
  const watch = setInterval(() => {
    const s = node.status();
    if (s.role !== lastRole || (s.role === 'leader' && s.term !== lastTerm)) {
      log?.info({ member: me.id, role: s.role, term: s.term, leader: s.leaderId, commitIndex: s.commitIndex }, 'role');
      lastRole = s.role;
      lastTerm = s.term;
    }
  }, 200);
  watch.unref();

  return {
    id: me.id,
    url: memberApiUrl(me),
    config,
    node,
    driver,
    core: vaultCore,
    status,
    async close() {
      if (closing) return;
      closing = true;
      migration?.stop();
      clearInterval(watch);
      closeRelayStreams();
      await app.close();
      driver.stop();
      await transport.close();
      await records.close();
      await storage.close();
    },
  };
}
