import type { Command } from 'commander';
import { readFleetConfig } from '../../host/fleet/config.js';
import { catchUpReason, memberHealth } from '../../host/fleet/health.js';
import { fetchStatuses } from '../../host/fleet/supervisor.js';
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
        const behind = catching > 0 ? `, ${catching} catching up` : '';
        process.stdout.write(`${config.fleetId}: ${up}/${config.members.length} members healthy${behind}, quorum ${config.quorum}: ${serving ? 'serving' : 'NOT SERVING'}\n`);
      }
      out.result('', { fleetId: config.fleetId, quorum: config.quorum, healthy: up, catchingUp: catching, serving, members: rows });
    });
};

const fmt = (v: number | null) => (v === null ? '-' : String(v));
