import { join } from 'node:path';
import type { VaultTransport } from '../../client/sdk/transport.js';
import { readFleetConfig } from '../../host/fleet/config.js';
import { startFleetGateway, type RunningFleetGateway } from '../../host/fleet/fleet-gateway.js';
import { FleetSupervisor, fetchStatuses } from '../../host/fleet/supervisor.js';
import { need, onCleanup, type DemoContext, type DemoStep } from './steps.js';
import { DEMO_PASSWORD, newDevice } from './vault-steps.js';


async function statusLines(ctx: DemoContext): Promise<string[]> {
  const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
  const st = await fetchStatuses(gw.config, 1000);
  return gw.config.members.map((m) => {
    const s = st.get(m.id);
    return s
      ? `member ${m.id} (${m.site}): ${s.role.padEnd(9)} term ${s.term}, commit ${s.commitIndex}, applied ${s.lastApplied}, ${s.records} record(s); store ${s.store.engine} ${s.store.state} at batch ${s.store.storeBatch}/${s.store.coreBatch}, ${s.store.repairs} repair(s)`
      : `member ${m.id} (${m.site}): down`;
  });
}

/** Runs the fleet the ceremony deployed: five member processes and a gateway serving bundles. */
export const fleetStartSteps: DemoStep[] = [
  {
    name: 'Start the deployed fleet: five member processes with Raft between them, and the gateway',
    async run(ctx) {
      const dir = join(ctx.workDir, 'fleet');
      const fleetPath = join(dir, 'fleet.json');
      const config = await readFleetConfig(fleetPath);
      const sup = new FleetSupervisor(dir, config);
      onCleanup(ctx, () => sup.stop());
      sup.startAll();
      const leader = await sup.waitForLeader(30_000);
      const gw = await startFleetGateway({
        fleetPath,
        port: 0,
        logger: false,
        overTheAir: { witnessUrl: need<string>(ctx, 'witnessUrl'), namespace: need<string>(ctx, 'namespace') },
      });
      onCleanup(ctx, () => gw.close());
      ctx.state.set('fleetSupervisor', sup);
      ctx.state.set('fleetGateway', gw);
      ctx.state.set('gatewayUrl', gw.url);
      ctx.say(`each member checked its code against the attested measurement and loaded its sealed fleet secrets; member ${leader} was elected leader`);
      ctx.say(`gateway on ${gw.url}: relays sealed bytes to any member and serves the witness-signed validation bundle`);
    },
  },
];

/** The right password on the new phone, while two members (the leader among them) die. */
export const fleetFaultSteps: DemoStep[] = [
  {
    name: 'The right password on the new phone, while two members die mid-recovery',
    async run(ctx) {
      const sup = need<FleetSupervisor>(ctx, 'fleetSupervisor');
      const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
      let calls = 0;
      const killer = (inner: VaultTransport): VaultTransport => async (envelope) => {
        const reply = await inner(envelope);
        if (++calls === 1) {
          // The attempt is committed and the credential response is back; before the password
          // proof goes out, two members die.
          const st = await fetchStatuses(gw.config, 500);
          const leader = [...st.entries()].find(([, s]) => s?.role === 'leader')?.[0] ?? 1;
          const other = gw.config.members.map((m) => m.id).find((id) => id !== leader)!;
          await sup.kill(leader);
          await sup.kill(other);
          ctx.say(`after the recovery start: kill -9 member ${leader} (the leader) and member ${other}`);
          const t = performance.now();
          const next = await sup.waitForLeader(15_000);
          ctx.say(`the three survivors elected member ${next} within ${(performance.now() - t).toFixed(0)} ms; the password proof goes out now`);
        }
        return reply;
      };
      const t0 = performance.now();
      const k = await newDevice(ctx, killer).client.recoverKey(DEMO_PASSWORD);
      if (Buffer.compare(Buffer.from(k), Buffer.from(need<Uint8Array>(ctx, 'escrowedKey'))) !== 0) throw new Error('recovered a different key');
      ctx.state.set('recoveredKey', k);
      ctx.say(`recovered K anyway (${(performance.now() - t0).toFixed(0)} ms): a majority committed the counter reset and released K under the OPAQUE session`);
    },
  },
  {
    name: 'Fleet status ($ bkv fleet status --fleet fleet/fleet.json)',
    async run(ctx) {
      for (const line of await statusLines(ctx)) ctx.say(line);
    },
  },
];
