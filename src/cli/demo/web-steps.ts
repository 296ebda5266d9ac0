import { startWebServer } from '../../host/web/server.js';
import { need, onCleanup, type DemoStep } from './steps.js';

/** The web app against the demo's fleet and witness: backups, restores and the audit explorer in a browser. */
export const webSteps: DemoStep[] = [
  {
    name: 'The same in a browser: the web app on localhost',
    async run(ctx) {
      const web = await startWebServer({
        port: Number(process.env.BKV_DEMO_WEB_PORT ?? 0),
        gatewayUrl: need<string>(ctx, 'gatewayUrl'),
        witnessUrl: need<string>(ctx, 'witnessUrl'),
        config: { witnessKey: need<string>(ctx, 'witnessKey'), namespace: need<string>(ctx, 'namespace') },
      });
      onCleanup(ctx, () => web.close());
      ctx.state.set('webUrl', web.url);
      ctx.say(`web app: ${web.url}`);
      ctx.say('back up files or a folder (encrypted in the browser), restore, escrow K under a password,');
      ctx.say('and open the audit explorer on the witness log with its deployment evidence');
      ctx.say('(passkeys: `bkv web`, whose local vault accepts assertions from its own origin)');
    },
  },
];
