import { join } from 'node:path';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { httpTransport, type VaultTransport } from '../../client/sdk/transport.js';
import { VaultClient } from '../../client/sdk/vault-client.js';
import { startFleetGateway, type RunningFleetGateway } from '../../host/fleet/fleet-gateway.js';
import { createFleet } from '../../host/fleet/provision.js';
import { FleetSupervisor, fetchStatuses } from '../../host/fleet/supervisor.js';
import { readFleetKeys } from '../vault-options.js';
import { need, type DemoContext, type DemoStep } from './steps.js';

const PASSWORD = 'purple elephant riding a tandem';
const ACCOUNT = 'bob';

/** Registers a clean-up for the demo runner to call at the end, whatever happens. */
function onCleanup(ctx: DemoContext, fn: () => Promise<void>): void {
  const list = (ctx.state.get('cleanup') as (() => Promise<void>)[] | undefined) ?? [];
  list.push(fn);
  ctx.state.set('cleanup', list);
}

async function client(ctx: DemoContext, wrap: (t: VaultTransport) => VaultTransport = (t) => t): Promise<VaultClient> {
  const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
  const token = async () => {
    const res = await fetch(`${gw.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: ACCOUNT }) });
    return ((await res.json()) as { token: string }).token;
  };
  return new VaultClient({ account: ACCOUNT, fleet: await readFleetKeys(gw.fleetKeysPath), transport: wrap(httpTransport({ gatewayUrl: gw.url, token })) });
}

async function statusLines(ctx: DemoContext): Promise<string[]> {
  const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
  const st = await fetchStatuses(gw.config, 1000);
  return gw.config.members.map((m) => {
    const s = st.get(m.id);
    return s
      ? `member ${m.id} (${m.site}): ${s.role.padEnd(9)} term ${s.term}, commit ${s.commitIndex}, applied ${s.lastApplied}, ${s.records} record(s)`
      : `member ${m.id} (${m.site}): down`;
  });
}

/** A fleet of five member processes that keeps serving while two of them die. */
export const fleetSteps: DemoStep[] = [
  {
    name: 'Start a five-member fleet (one process per member, Raft between them) and its gateway',
    async run(ctx) {
      const dir = join(ctx.workDir, 'fleet');
      const fleet = await createFleet(dir, { members: 5, basePort: 0 });
      const sup = new FleetSupervisor(dir, fleet.config);
      onCleanup(ctx, () => sup.stop());
      sup.startAll();
      const leader = await sup.waitForLeader(30_000);
      const gw = await startFleetGateway({ fleetPath: fleet.fleetPath, port: 0, logger: false });
      onCleanup(ctx, () => gw.close());
      ctx.state.set('fleetSupervisor', sup);
      ctx.state.set('fleetGateway', gw);
      ctx.say(`fleet ${fleet.config.fleetId}: members 1–5 over sites ${[...new Set(fleet.config.members.map((m) => m.site))].join(', ')}, quorum ${fleet.config.quorum}; member ${leader} was elected leader`);
      ctx.say(`gateway on ${gw.url}; every member holds the same fleet keys (${fleet.fleetKeysPath.slice(ctx.workDir.length + 1)})`);
    },
  },
  {
    name: 'Escrow a backup key in the fleet under a password',
    async run(ctx) {
      const k = generateBackupKey();
      const { attemptsRemaining } = await (await client(ctx)).registerKey(PASSWORD, k);
      ctx.state.set('fleetKey', k);
      ctx.say(`registered: the record is committed on a majority of members before the reply; ${attemptsRemaining} wrong guesses allowed`);
    },
  },
  {
    name: 'Kill two members (the leader among them) in the middle of a recovery',
    async run(ctx) {
      const sup = need<FleetSupervisor>(ctx, 'fleetSupervisor');
      const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
      let calls = 0;
      const killer = (inner: VaultTransport): VaultTransport => async (envelope) => {
        const reply = await inner(envelope);
        if (++calls === 1) {
          // The attempt is committed; before the password proof goes out, two members die.
          const st = await fetchStatuses(gw.config, 500);
          const leader = [...st.entries()].find(([, s]) => s?.role === 'leader')?.[0] ?? 1;
          const other = gw.config.members.map((m) => m.id).find((id) => id !== leader)!;
          await sup.kill(leader);
          await sup.kill(other);
          ctx.say(`after the recovery start: kill -9 member ${leader} (the leader) and member ${other}`);
          // Requests forwarded to a dead leader wait out the proposal timeout; the demo waits for the
          // election instead, as a client retrying after a timeout would.
          const t = performance.now();
          const next = await sup.waitForLeader(15_000);
          ctx.say(`the three survivors elected member ${next} within ${(performance.now() - t).toFixed(0)} ms; the password proof goes out now`);
        }
        return reply;
      };
      const t0 = performance.now();
      const k = await (await client(ctx, killer)).recoverKey(PASSWORD);
      const expected = need<Uint8Array>(ctx, 'fleetKey');
      if (Buffer.compare(Buffer.from(k), Buffer.from(expected)) !== 0) throw new Error('recovered a different key');
      ctx.say(`the recovery finished anyway (${(performance.now() - t0).toFixed(0)} ms): three members elected a new leader and committed the counter reset; K is identical`);
    },
  },
  {
    name: 'Fleet status ($ bkv fleet status --fleet fleet/fleet.json)',
    async run(ctx) {
      for (const line of await statusLines(ctx)) ctx.say(line);
    },
  },
];
