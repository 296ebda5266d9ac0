/**
 * A member process's Prometheus metrics (docs/fleet.md, "Metrics"): consensus, record store and
 * core counters of each replication group it runs (every series labelled `group`), proposals and
 * commit latency, peer transport frames, requests rerouted between groups, and the Node process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Replicator } from '../../trusted/core/replication.js';
import type { GroupReplica } from './group-replica.js';
import { catchUpReason } from './health.js';

export interface MemberMetrics {
  registry: Registry;
  applied: Counter<'group'>;
  wrongGroup: Counter<'outcome'>;
  /** Wraps group `group`'s replicator: counts proposals and times commits. */
  measured(group: string): (r: Replicator) => Replicator;
  /** The metrics text, with the transport's counters as they are now. */
  scrape(transport: Record<string, number>): Promise<string>;
}

/** Metrics over `replicas` (read at each scrape: the list may fill after this call). */
export function createMemberMetrics(replicas: readonly GroupReplica[]): MemberMetrics {
  const registry = new Registry();
  // The event-loop delay monitor samples every 100 ms, not prom-client's 10 ms: each sample is a timer
  // wake-up of an otherwise idle process.
  collectDefaultMetrics({ register: registry, prefix: 'bkv_member_', eventLoopMonitoringPrecision: 100 });
  const roleCode = { follower: 0, precandidate: 1, candidate: 2, leader: 3 } as const;
  new Gauge({
    name: 'bkv_member_raft',
    help: 'Raft state of this member in each replication group: role (0 follower, 1 pre-candidate, 2 candidate, 3 leader), term, commit index, highest commit index a leader told it, last applied, learner, catching up (1: behind the leader or its record store not in step), elections started, records, last batch in the record store and in the core, store repairs, and the group range in slots (range_start, range_end)',
    labelNames: ['field', 'group'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of replicas) {
        const s = r.node.status();
        const group = String(r.group);
        const store = r.records.status();
        this.set({ field: 'role', group }, roleCode[s.role]);
        this.set({ field: 'term', group }, s.term);
        this.set({ field: 'commit_index', group }, s.commitIndex);
        this.set({ field: 'leader_commit', group }, s.leaderCommit);
        this.set({ field: 'last_applied', group }, s.lastApplied);
        this.set({ field: 'learner', group }, s.learner ? 1 : 0);
        this.set({ field: 'catching_up', group }, catchUpReason({ ...s, store }) === null ? 0 : 1);
        this.set({ field: 'elections', group }, r.node.stats.elections);
        this.set({ field: 'records', group }, r.stateMachine.count);
        this.set({ field: 'store_batch', group }, store.storeBatch);
        this.set({ field: 'core_batch', group }, r.stateMachine.lastBatchIndex);
        this.set({ field: 'store_repairs', group }, store.repairs);
        const range = r.stateMachine.group?.owned ?? { start: 0, end: 2 ** 32 };
        this.set({ field: 'range_start', group }, range.start);
        this.set({ field: 'range_end', group }, range.end);
      }
    },
  });
  const storeStates = ['in-step', 'writing', 'gap', 'repairing', 'corrupt'] as const;
  new Gauge({
    name: 'bkv_member_record_store',
    help: "This member's record store of each group: last batch in the store (store_batch) and in the core (core_batch), records, repairs, and state (1 on the current state's series)",
    labelNames: ['field', 'engine', 'state', 'group'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const rep of replicas) {
        const r = rep.records.status();
        const group = String(rep.group);
        this.set({ field: 'store_batch', engine: r.engine, state: '', group }, r.storeBatch);
        this.set({ field: 'core_batch', engine: r.engine, state: '', group }, r.coreBatch);
        this.set({ field: 'records', engine: r.engine, state: '', group }, r.records);
        this.set({ field: 'repairs', engine: r.engine, state: '', group }, r.repairs);
        this.set({ field: 'written', engine: r.engine, state: '', group }, r.written);
        this.set({ field: 'transactions', engine: r.engine, state: '', group }, r.transactions);
        for (const st of storeStates) this.set({ field: 'state', engine: r.engine, state: st, group }, r.state === st ? 1 : 0);
      }
    },
  });
  const proposals = new Counter({ name: 'bkv_member_proposals_total', help: 'Proposals by outcome and group', labelNames: ['outcome', 'group'] as const, registers: [registry] });
  const applied = new Counter({ name: 'bkv_member_applied_entries_total', help: 'Committed entries applied on this member, by group', labelNames: ['group'] as const, registers: [registry] });
  const commitLatency = new Histogram({
    name: 'bkv_member_commit_seconds',
    help: 'Time from proposal on this member to commit and apply',
    labelNames: ['group'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const transportGauge = new Gauge({ name: 'bkv_member_transport', help: 'Peer transport frames', labelNames: ['event'] as const, registers: [registry] });
  new Gauge({
    name: 'bkv_core_events',
    help: 'Counters reported by the vault core of each group since this process started (requests, rejected, credentialResponses, recoveries)',
    labelNames: ['event', 'group'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of replicas) for (const [event, v] of Object.entries(r.core.stats)) this.set({ event, group: String(r.group) }, v);
    },
  });
  const wrongGroup = new Counter({ name: 'bkv_member_wrong_group_total', help: 'Relayed requests a group refused as not its own, by what this member did: rerouted (to its node of the owner group) or returned', labelNames: ['outcome'] as const, registers: [registry] });

  const measured = (group: string) => (r: Replicator): Replicator => ({
    async propose(entry) {
      const stop = commitLatency.startTimer({ group });
      try {
        const out = await r.propose(entry);
        stop();
        proposals.inc({ outcome: 'committed', group });
        return out;
      } catch (e) {
        proposals.inc({ outcome: 'failed', group });
        throw e;
      }
    },
    readBarrier: () => r.readBarrier(),
  });
  return {
    registry,
    applied,
    wrongGroup,
    measured,
    async scrape(stats) {
      for (const [event, v] of Object.entries(stats)) transportGauge.set({ event }, v);
      return registry.metrics();
    },
  };
}
