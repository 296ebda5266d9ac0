/**
 * Demo steps for replication groups (docs/groups.md): a second, development fleet of five members
 * running three groups and a spare, users spread over the groups by record id, and a split that
 * hands half a group's range to the spare group while every user keeps recovering.
 */
import { join } from 'node:path';
import { httpTransport } from '../../client/sdk/transport.js';
import { VaultClient } from '../../client/sdk/vault-client.js';
import { startFleetGateway } from '../../host/fleet/fleet-gateway.js';
import { createFleet } from '../../host/fleet/provision.js';
import { FleetSupervisor } from '../../host/fleet/supervisor.js';
import { groupViews, runTransfer } from '../../host/fleet/transfer-driver.js';
import type { FleetConfig } from '../../host/fleet/config.js';
import { fromB64 } from '../../shared/protocol/messages.js';
import { need, onCleanup, type DemoContext, type DemoStep } from './steps.js';
import { devToken } from './vault-steps.js';

const USERS = 24;
const PASSWORD = 'correct horse battery staple';

async function groupLines(config: FleetConfig): Promise<string[]> {
  return (await groupViews(config)).map((v, g) =>
    v
      ? `group ${g}: ${(v.status.range.end > v.status.range.start ? `slots ${v.status.range.text}` : 'empty (spare)').padEnd(30)}  leader member ${v.leader}, ${v.status.records} record(s), commit ${v.status.commitIndex}`
      : `group ${g}: no leader`,
  );
}

export const groupSteps: DemoStep[] = [
  {
    name: 'Scale out: five members running three replication groups and a spare ($ bkv up --members 5 --groups 3)',
    async run(ctx) {
      const dir = join(ctx.workDir, 'groups');
      const fleet = await createFleet(dir, { members: 5, basePort: 0, groups: 3, spareGroups: 1 });
      const sup = new FleetSupervisor(dir, fleet.config);
      onCleanup(ctx, () => sup.stop());
      sup.startAll();
      const leaders = await sup.waitForLeaders(30_000);
      const gw = await startFleetGateway({ fleetPath: fleet.fleetPath, port: 0, logger: false, rateLimit: { perAccountPerMinute: 100_000, perAddressPerMinute: 100_000 } });
      onCleanup(ctx, () => gw.close());
      ctx.state.set('groupFleet', { config: fleet.config, url: gw.url, keys: fleet.fleetKeysPath, gw });
      ctx.say(`each member runs one consensus node, sealed state, record store and core per group; first leaders: ${leaders.map((l, g) => `group ${g} on member ${l}`).join(', ')}`);
      ctx.say('each group prefers its own member as leader (group g on member g+1) and hands leadership over to it once it has caught up');
    },
  },
  {
    name: `${USERS} users register; only the cores know which group owns each (record ids are keyed hashes)`,
    async run(ctx) {
      const g = need<{ config: FleetConfig; url: string; keys: string; gw: Awaited<ReturnType<typeof startFleetGateway>> }>(ctx, 'groupFleet');
      const keys = JSON.parse(await (await import('node:fs/promises')).readFile(g.keys, 'utf8')) as Record<string, string>;
      const pinned = { opaqueServerPublicKey: fromB64(keys.opaqueServerPublicKey!, 'key'), encryptionPublicKey: fromB64(keys.encryptionPublicKey!, 'key') };
      const client = (account: string) =>
        new VaultClient({ account, fleet: pinned, ksf: { memory: 256, iterations: 1, parallelism: 1 }, transport: httpTransport({ gatewayUrl: g.url, token: () => devToken(g.url, account) }) });
      const escrowed = new Map<string, Uint8Array>();
      for (let i = 0; i < USERS; i++) {
        const k = crypto.getRandomValues(new Uint8Array(32));
        await client(`group-user-${i}`).registerKey(PASSWORD, k);
        escrowed.set(`group-user-${i}`, k);
      }
      ctx.state.set('groupUsers', { client, escrowed });
      for (const line of await groupLines(g.config)) ctx.say(line);
      const s = g.gw.relay.stats;
      ctx.say(`the gateway learned each account's group from the members' answers (${s.notLeader} re-routed to another group's leader); now one attempt per request`);
    },
  },
  {
    name: 'Split group 0 into the spare group while users recover ($ bkv fleet split --group 0)',
    async run(ctx) {
      const g = need<{ config: FleetConfig }>(ctx, 'groupFleet');
      const u = need<{ client: (a: string) => VaultClient; escrowed: Map<string, Uint8Array> }>(ctx, 'groupUsers');
      const v = await groupViews(g.config);
      const r0 = v[0]!.status.range;
      const half = { start: r0.end - Math.floor((r0.end - r0.start) / 2), end: r0.end };
      const recoverAll = async () => {
        for (const [account, k] of u.escrowed) {
          const got = await u.client(account).recoverKey(PASSWORD);
          if (Buffer.compare(Buffer.from(got), Buffer.from(k)) !== 0) throw new Error(`${account} recovered a different key`);
        }
      };
      const recovering = recoverAll();
      const res = await runTransfer(g.config, 0, 3, half, { say: (line) => ctx.say(line) });
      await recovering;
      if (res.outcome !== 'done') throw new Error(`the split ended ${res.outcome}`);
      ctx.say(`TransferOut, TransferPrepare, ${res.records} record(s) in ${res.chunks} chunk(s) proved against group 0's root, TransferAccept (range digests equal), TransferDone: ${Math.round(res.ms)} ms`);
      for (const line of await groupLines(g.config)) ctx.say(line);
      await recoverAll();
      ctx.say(`all ${USERS} users recovered during and after the split; at no moment did two groups serve one record`);
    },
  },
];
