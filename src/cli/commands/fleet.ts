import type { Command } from 'commander';
import { BkvError } from '../../shared/errors.js';
import { fleetGroups, readFleetConfig } from '../../host/fleet/config.js';
import { catchUpReason, memberHealth } from '../../host/fleet/health.js';
import { fetchStatuses, groupLeader } from '../../host/fleet/supervisor.js';
import { commandGroup, type CommandModule } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { makeOutput } from '../output.js';

/** `bkv fleet status`: every member's role, term, commit index, lag and health. */
export const fleetCommands: CommandModule = (program: Command, ctx) => {
  const fleet = commandGroup(program, 'fleet', 'operate a vault fleet');
  fleet
    .command('migrate')
    .description("prepare a fleet directory written by release 0.1 (`bkv up` also does it): move each member's old state aside and leave its records for the leader to import at the next start")
    .requiredOption('--dir <dir>', 'the fleet directory (all member directories on this machine)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const out = makeOutput(!!o.json);
      const { prepareFleetMigration } = await import('../../host/migration/fleet.js');
      const pending = await prepareFleetMigration(o.dir, (line) => process.stderr.write(`${line}\n`));
      out.result(pending === null ? `${o.dir}: nothing to migrate` : `${o.dir}: ${pending} records will be imported when the fleet starts (bkv up)`, { dir: o.dir, pending });
    });
  const moveAction = async (o: MoveOpts, split: boolean) => {
    const out = makeOutput(!!o.json);
    const config = await readFleetConfig(o.fleet);
    const say = (line: string) => process.stderr.write(`${line}\n`);
    const { groupViews, runTransfer } = await import('../../host/fleet/transfer-driver.js');
    const source = Number(o.from);
    if (!Number.isInteger(source)) throw new BkvError('USAGE', split ? '--group is a group number' : '--from is a group number');
    let dest: number | null = null;
    let range: { start: number; end: number } | null = null;
    if (!o.resume) {
      const v = await groupViews(config);
      const sv = v[source];
      if (!sv) throw new BkvError('UNAVAILABLE', `group ${source} has no leader now`);
      if (o.to !== undefined) dest = Number(o.to);
      else if (split) {
        const empty = v.findIndex((x, g) => g !== source && x !== null && x.status.range.end <= x.status.range.start && !x.status.transfer.incoming);
        if (empty < 0) throw new BkvError('USAGE', 'no empty group to split into (start the fleet with --spare-groups, or name one with --into)');
        dest = empty;
      }
      if (dest === null || !Number.isInteger(dest) || !v[dest]) throw new BkvError(dest === null || !Number.isInteger(dest) ? 'USAGE' : 'UNAVAILABLE', dest === null ? '--to is required' : `group ${dest} has no leader now`);
      range = movingPart(sv.status.range, v[dest]!.status.range, {
        ...(o.slots !== undefined ? { slots: Number(o.slots) } : {}), fraction: Number(o.fraction), ...(o.all ? { all: true } : {}),
      });
    }
    const r = await runTransfer(config, source, dest, range, { say, timeoutMs: Number(o.timeout) * 1000, ...(o.cancel ? { cancel: true } : {}) });
    if (r.outcome !== 'done') ctx.setExitCode(EXIT.FAILURE);
    out.result(
      `transfer ${r.source}/${r.seq}: slots [${r.range.start}, ${r.range.end}) from group ${r.source} to group ${r.dest}: ${r.outcome} (${r.records} records in ${r.chunks} chunks, ${Math.round(r.ms)} ms)`,
      { ...r },
    );
  };
  fleet
    .command('move')
    .description('move part of a replication group\'s range of record ids to an adjacent or empty group (both groups commit the hand-over; docs/groups.md)')
    .requiredOption('--fleet <file>', 'the fleet configuration (D/fleet.json)')
    .option('--from <group>', 'the source group')
    .option('--to <group>', 'the destination group: adjacent to the source, or empty')
    .option('--fraction <f>', 'the share of the source\'s range to move', '0.5')
    .option('--slots <n>', 'move exactly this many slots (2^32 slots in all) instead of a fraction')
    .option('--all', 'move the whole range (merge the source into the destination)')
    .option('--resume', "continue the source's open transfer (after a crash or a timeout)")
    .option('--cancel', 'with --resume: have the destination refuse the open transfer, so the source serves the range again')
    .option('--timeout <s>', 'give up after this many seconds (the transfer stays open: --resume)', '120')
    .option('--json', 'print the result as JSON')
    .action((o: MoveOpts) => moveAction(o, false));
  fleet
    .command('split')
    .description('split a replication group: move the upper half of its range to an empty (spare) group')
    .requiredOption('--fleet <file>', 'the fleet configuration (D/fleet.json)')
    .requiredOption('--group <group>', 'the group to split')
    .option('--into <group>', 'the empty group that takes the upper half (default: the first empty one)')
    .option('--timeout <s>', 'give up after this many seconds (the transfer stays open: bkv fleet move --resume)', '120')
    .option('--json', 'print the result as JSON')
    .action((o: { fleet: string; group: string; into?: string; timeout: string; json?: boolean }) =>
      moveAction({ fleet: o.fleet, from: o.group, ...(o.into !== undefined ? { to: o.into } : {}), fraction: '0.5', timeout: o.timeout, ...(o.json ? { json: true } : {}) }, true));
  fleet
    .command('status')
    .description("show each member's role, term, commit index, lag, record store and health")
    .requiredOption('--fleet <file>', 'the fleet configuration (D/fleet.json)')
    .option('--timeout <ms>', 'how long to wait for each member', '1500')
    .option('--json', 'print the status as JSON')
    .action(async (o: { fleet: string; timeout: string; json?: boolean }) => {
      const out = makeOutput(!!o.json);
      const config = await readFleetConfig(o.fleet);
      const statuses = await fetchStatuses(config, Number(o.timeout) || 1500);
      const leaderCommit = Math.max(0, ...[...statuses.values()].map((s) => (s?.role === 'leader' ? s.commitIndex : 0)));
      const maxCommit = Math.max(0, ...[...statuses.values()].map((s) => s?.commitIndex ?? 0));
      const ref = leaderCommit || maxCommit;
      const rows = config.members.map((m) => {
        const s = statuses.get(m.id) ?? null;
        const health = memberHealth(s, ref);
        return {
          id: m.id,
          site: m.site,
          api: `${m.host}:${m.apiPort}`,
          role: s?.role ?? '-',
          term: s?.term ?? null,
          leader: s?.leader ?? null,
          commitIndex: s?.commitIndex ?? null,
          lastApplied: s?.lastApplied ?? null,
          lag: s ? Math.max(0, Math.max(ref, s.leaderCommit ?? 0) - s.lastApplied) : null,
          records: s?.records ?? null,
          store: s?.store
            ? { engine: s.store.engine, location: s.store.location, state: s.store.state, problem: s.store.problem, storeBatch: s.store.storeBatch, coreBatch: s.store.coreBatch, records: s.store.records, repairs: s.store.repairs }
            : null,
          health,
          catchingUp: health === 'catching up' ? catchUpReason(s!, ref) : null,
        };
      });
      // A fleet of replication groups: each group's range, leader, records and lag (from its leader and followers).
      const groupRows = fleetGroups(config).multi
        ? Array.from({ length: fleetGroups(config).total }, (_, g) => {
            const views = [...statuses.entries()].map(([id, s]) => ({ id, v: s?.groups?.find((x) => x.group === g) ?? null }));
            const leader = groupLeader(statuses, g, config.quorum);
            const lv = views.find((x) => x.id === leader)?.v ?? null;
            const lc = lv?.commitIndex ?? Math.max(0, ...views.map((x) => x.v?.commitIndex ?? 0));
            const lags = views.filter((x) => x.v && x.id !== leader).map((x) => Math.max(0, lc - x.v!.lastApplied));
            const t = lv?.transfer;
            return {
              group: g,
              range: lv?.range ?? null,
              serving: lv?.serving ?? false,
              leader,
              term: lv?.term ?? null,
              commitIndex: lv?.commitIndex ?? null,
              records: lv?.records ?? null,
              maxFollowerLag: lags.length ? Math.max(...lags) : null,
              members: views.filter((x) => x.v).length,
              transfer: t?.outgoing ? `out ${t.outgoing.seq} to ${t.outgoing.dest}` : t?.incoming ? `in ${t.incoming.source}/${t.incoming.seq}` : null,
            };
          })
        : null;
      const up = rows.filter((r) => r.health === 'ok').length;
      const catching = rows.filter((r) => r.health === 'catching up').length;
      const serving = up >= config.quorum;
      if (!serving) ctx.setExitCode(EXIT.UNAVAILABLE);
      if (!o.json) {
        const head = ['member', 'site', 'api', 'role', 'term', 'commit', 'applied', 'lag', 'records', 'store', 'store-state', 'batch store/core', 'repairs', 'health'];
        const table = [
          head,
          ...rows.map((r) => [
            String(r.id), r.site, r.api, r.role, fmt(r.term), fmt(r.commitIndex), fmt(r.lastApplied), fmt(r.lag), fmt(r.records),
            r.store?.engine ?? '-', r.store?.state ?? '-', r.store ? `${r.store.storeBatch}/${r.store.coreBatch}` : '-', fmt(r.store?.repairs ?? null), r.health,
          ]),
        ];
        const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
        for (const row of table) process.stdout.write(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
        for (const r of rows) if (r.catchingUp) process.stdout.write(`member ${r.id} catching up: ${r.catchingUp}\n`);
        for (const r of rows) if (r.store?.problem) process.stdout.write(`member ${r.id} store: ${r.store.problem}\n`);
        if (groupRows) {
          process.stdout.write('\n');
          const gh = ['group', 'range (slots)', 'leader', 'term', 'commit', 'records', 'follower lag', 'members', 'transfer'];
          const gt = [gh, ...groupRows.map((g) => [
            String(g.group), g.range ? (g.range.end > g.range.start ? g.range.text : 'empty') : '-', g.leader === null ? 'NONE' : `member ${g.leader}`, fmt(g.term),
            fmt(g.commitIndex), fmt(g.records), fmt(g.maxFollowerLag), `${g.members}/${config.members.length}`, g.transfer ?? '-',
          ])];
          const gw = gh.map((_, i) => Math.max(...gt.map((row) => row[i]!.length)));
          for (const row of gt) process.stdout.write(row.map((c, i) => c.padEnd(gw[i]!)).join('  ').trimEnd() + '\n');
          process.stdout.write('\n');
        }
        const behind = catching > 0 ? `, ${catching} catching up` : '';
        process.stdout.write(`${config.fleetId}: ${up}/${config.members.length} members healthy${behind}, quorum ${config.quorum}: ${serving ? 'serving' : 'NOT SERVING'}\n`);
      }
      out.result('', { fleetId: config.fleetId, quorum: config.quorum, healthy: up, catchingUp: catching, serving, members: rows, ...(groupRows ? { groups: groupRows } : {}) });
    });
};

const fmt = (v: number | null) => (v === null ? '-' : String(v));

interface MoveOpts {
  fleet: string;
  from?: string;
  to?: string;
  fraction: string;
  slots?: string;
  all?: boolean;
  resume?: boolean;
  cancel?: boolean;
  timeout: string;
  json?: boolean;
}

/**
 * The part of `src` (slots) that moves to a group owning `dst`: a suffix when `dst` is empty or
 * starts where `src` ends, a prefix when it ends where `src` starts (docs/groups.md).
 */
export function movingPart(src: { start: number; end: number }, dst: { start: number; end: number }, o: { slots?: number; fraction?: number; all?: boolean }): { start: number; end: number } {
  const size = src.end - src.start;
  if (size <= 0) throw new BkvError('USAGE', 'the source group owns no range');
  const emptyDst = dst.end <= dst.start;
  const high = emptyDst || dst.start === src.end;
  if (!high && dst.end !== src.start) throw new BkvError('USAGE', 'the destination group is not adjacent to the source group (move to an adjacent or an empty group)');
  const n = o.all ? size : o.slots !== undefined ? o.slots : Math.floor(size * (o.fraction ?? 0.5));
  if (!Number.isInteger(n) || n < 1 || n > size) throw new BkvError('USAGE', `the amount to move must be 1 to ${size} slots`);
  return high ? { start: src.end - n, end: src.end } : { start: src.start, end: src.start + n };
}
