/**
 * Starts and watches the member processes of a fleet on this machine (`node bin/bkv.js member
 * start …` each), with their logs in files, optional restart of members that die, and an orderly
 * stop. Used by `bkv up`, the fault test, the benchmark and the demo.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { fleetGroups, memberApiUrl, type FleetConfig } from './config.js';
import type { MemberStatus } from './member-status.js';
import { fleetPaths } from './provision.js';

/** bin/bkv.js, three directories above this module (src/host/fleet or dist/host/fleet). */
export const BKV_BIN = fileURLToPath(new URL('../../../bin/bkv.js', import.meta.url));

/** The environment variable `bkv member start` reads its record store URL from when `--store` is absent. */
export const STORE_ENV = 'BKV_STORE';

/**
 * Member `id`'s record store, given the fleet's `--store`: each member's host is a separate party,
 * so on PostgreSQL each member gets its own schema (`<schema>_<id>`, default `bkv_member_<id>`); a
 * `sqlite:` path is taken as a directory holding `member-<id>.sqlite`.
 */
export function memberStoreUrl(store: string, id: number): string {
  if (/^postgres(ql)?:\/\//.test(store)) {
    const u = new URL(store);
    u.searchParams.set('schema', `${u.searchParams.get('schema') ?? 'bkv_member'}_${id}`);
    return u.toString();
  }
  if (store.startsWith('sqlite:')) return `${store}/member-${id}.sqlite`.replace(/\/+member-/, '/member-');
  return store;
}

/**
 * Node's profiling flags this process was started with (`--cpu-prof`, `--cpu-prof-dir=…`,
 * `--heap-prof…`, `--prof`; `--perf-basic-prof…` and `--interpreted-frames-native-stack` for Linux
 * perf's symbol maps), passed on to the members: `node --cpu-prof --cpu-prof-dir=D bin/bkv.js up`
 * profiles the gateway and every member (Node refuses most of these flags in NODE_OPTIONS).
 */
export function profilingArgs(execArgv: readonly string[] = process.execArgv): string[] {
  return execArgv.filter((a) => /^--(cpu-prof|heap-prof|prof|perf-basic-prof|perf-prof|interpreted-frames-native-stack)(-[a-z-]+)?(=|$)/.test(a));
}

/** The wait before a member that exited is started again (restartDelay). */
export const RESTART_DELAY_MS = 500;
export const RESTART_DELAY_MAX_MS = 30_000;
/** A member that exits by itself within this long of its start has failed to start. */
export const QUICK_EXIT_MS = 10_000;

export interface SupervisorOptions {
  /** Restart a member that exits while the supervisor is running (default false). */
  restart?: boolean;
  /** Where member logs go (default D/logs). */
  logDir?: string;
  /** Extra arguments for `bkv member start`. */
  memberArgs?: string[];
  /**
   * Each member's record store URL (`memberStoreUrl`); none: SQLite in each member's directory. Passed
   * in the member's environment (BKV_STORE), not its arguments, so no password shows in a process list.
   */
  store?: string;
  onEvent?: (line: string) => void;
}

export interface MemberProc {
  id: number;
  child: ChildProcess;
  pid: number;
  startedAt: number;
  exited: Promise<number | string | null>;
}

export class FleetSupervisor {
  readonly procs = new Map<number, MemberProc>();
  readonly restarts = new Map<number, number>();
  /** Member id → exits in a row that came soon after a start, not by a signal (restartDelay). */
  private readonly quickExits = new Map<number, number>();
  private stopping = false;
  private readonly logDir: string;

  constructor(
    readonly dir: string,
    readonly config: FleetConfig,
    private readonly opts: SupervisorOptions = {},
  ) {
    this.logDir = opts.logDir ?? join(dir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
  }

  logPath(id: number): string {
    return join(this.logDir, `member-${id}.log`);
  }

  start(id: number): MemberProc {
    const existing = this.procs.get(id);
    if (existing && existing.child.exitCode === null && existing.child.signalCode === null) return existing;
    const paths = fleetPaths(this.dir);
    const fd = openSync(this.logPath(id), 'a');
    const env = { ...process.env };
    delete env[STORE_ENV];
    if (this.opts.store) env[STORE_ENV] = memberStoreUrl(this.opts.store, id);
    const child = spawn(process.execPath, [...profilingArgs(), BKV_BIN, 'member', 'start', '--dir', paths.member(id), '--fleet', paths.fleet, ...(this.opts.memberArgs ?? [])], {
      // The IPC channel is how a member learns that this supervisor is gone (it closes when this
      // process exits, however it exits): the member then stops instead of running on unsupervised.
      stdio: ['ignore', fd, fd, 'ipc'],
      env,
    });
    child.channel?.unref();
    closeSync(fd);
    const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code)));
    const proc: MemberProc = { id, child, pid: child.pid ?? -1, startedAt: performance.now(), exited };
    this.procs.set(id, proc);
    void exited.then((how) => {
      if (this.procs.get(id) !== proc) return;
      if (!this.opts.restart || this.stopping) {
        this.opts.onEvent?.(`member ${id} (pid ${proc.pid}) exited: ${how}`);
        return;
      }
      this.restarts.set(id, (this.restarts.get(id) ?? 0) + 1);
      const delay = this.restartDelay(id, how, performance.now() - proc.startedAt);
      this.opts.onEvent?.(`member ${id} (pid ${proc.pid}) exited: ${how}; restarting in ${delay / 1000} s`);
      setTimeout(() => {
        if (!this.stopping) {
          const p = this.start(id);
          this.opts.onEvent?.(`member ${id} restarted (pid ${p.pid})`);
        }
      }, delay).unref();
    });
    return proc;
  }

  /**
   * How long to wait before restarting member `id`, which exited `how` after `ranMs`. A member
   * killed by a signal (an operator, a fault test) comes back after RESTART_DELAY_MS. One that
   * exited by itself soon after it started (its state directory in use by another process, a
   * corrupt state, a port taken) would only fail again: each such exit in a row doubles the wait,
   * up to RESTART_DELAY_MAX_MS, and a run of QUICK_EXIT_MS or more starts the count again.
   */
  private restartDelay(id: number, how: number | string | null, ranMs: number): number {
    const quick = typeof how === 'number' && ranMs < QUICK_EXIT_MS;
    const n = quick ? (this.quickExits.get(id) ?? 0) + 1 : 0;
    this.quickExits.set(id, n);
    return Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MS * 2 ** Math.max(0, n - 1));
  }

  startAll(): void {
    for (const m of this.config.members) this.start(m.id);
  }

  isRunning(id: number): boolean {
    const p = this.procs.get(id);
    return !!p && p.child.exitCode === null && p.child.signalCode === null;
  }

  signal(id: number, sig: NodeJS.Signals): void {
    const p = this.procs.get(id);
    if (p && this.isRunning(id)) p.child.kill(sig);
  }

  /** Sends SIGKILL and waits for the exit. */
  async kill(id: number): Promise<void> {
    const p = this.procs.get(id);
    if (!p || !this.isRunning(id)) return;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  /** Stops every member: SIGCONT (in case one is stopped), SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    const running = [...this.procs.values()].filter((p) => this.isRunning(p.id));
    for (const p of running) {
      p.child.kill('SIGCONT');
      p.child.kill('SIGTERM');
    }
    await Promise.all(
      running.map(async (p) => {
        const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
        await p.exited;
        clearTimeout(t);
      }),
    );
  }

  /** Waits until a quorum of members report the same leader; resolves with the leader's id. */
  async waitForLeader(timeoutMs = 20_000): Promise<number> {
    return (await this.waitForLeaders(timeoutMs))[0]!;
  }

  /**
   * Waits until every replication group has a leader a quorum of members follows; returns the
   * leaders by group (one entry in a fleet without groups).
   */
  async waitForLeaders(timeoutMs = 20_000): Promise<number[]> {
    const deadline = performance.now() + timeoutMs;
    const total = fleetGroups(this.config).total;
    while (performance.now() < deadline) {
      const statuses = await fetchStatuses(this.config, 300);
      const found = Array.from({ length: total }, (_, g) => groupLeader(statuses, g, this.config.quorum));
      if (found.every((l) => l !== null)) return found as number[];
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no leader${total > 1 ? ' in every group' : ''} within ${timeoutMs} ms`);
  }
}

/** The member a quorum follows as leader of group `g` (its own status agreeing), from every member's status. */
export function groupLeader(statuses: Map<number, MemberStatus | null>, g: number, quorum: number): number | null {
  const votes = new Map<number, number>();
  const view = (s: MemberStatus) => (s.groups ? s.groups.find((x) => x.group === g) : g === 0 ? s : undefined);
  for (const s of statuses.values()) {
    const v = s ? view(s) : undefined;
    if (v && v.leader !== null && !v.learner) votes.set(v.leader, (votes.get(v.leader) ?? 0) + 1);
  }
  for (const [leader, n] of votes) {
    const ls = statuses.get(leader);
    if (n >= quorum && ls && view(ls)?.role === 'leader') return leader;
  }
  return null;
}

/** Every member's `GET /v1/status` (null where the member does not answer in time). */
export async function fetchStatuses(config: FleetConfig, timeoutMs = 1000): Promise<Map<number, MemberStatus | null>> {
  const out = new Map<number, MemberStatus | null>();
  await Promise.all(
    config.members.map(async (m) => {
      try {
        const res = await fetch(`${memberApiUrl(m)}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
        out.set(m.id, res.ok ? ((await res.json()) as MemberStatus) : null);
      } catch {
        out.set(m.id, null);
      }
    }),
  );
  return out;
}
