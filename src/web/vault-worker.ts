/**
 * The password escrow runs in this Web Worker: OPAQUE's Argon2id (64 MiB, WebAssembly) takes a
 * second or more, and the page must stay responsive meanwhile. The worker talks to the gateway
 * at the page's own origin and learns the fleet keys as the app's configuration says (over the
 * air under a pinned witness key, or pinned keys).
 */
import { VaultClient } from '../client/sdk/vault-client.js';
import { fleetFromConfig, transportFor, type WebConfig } from './vault-config.js';

export type WorkerRequest =
  | { id: number; op: 'register'; account: string; password: string; key: Uint8Array; config: WebConfig }
  | { id: number; op: 'recover'; account: string; password: string; config: WebConfig };

export type WorkerReply =
  | { id: number; ok: true; key?: Uint8Array; attemptsRemaining?: number }
  | { id: number; ok: false; code: string; message: string; attemptsRemaining?: number };

const scope = self as unknown as { onmessage: ((ev: MessageEvent<WorkerRequest>) => void) | null; postMessage(m: WorkerReply): void };

scope.onmessage = (ev) => {
  const req = ev.data;
  void (async () => {
    try {
      const client = new VaultClient({
        account: req.account,
        fleet: fleetFromConfig(req.config, self.location.origin),
        transport: transportFor(req.config, self.location.origin, req.account),
        ...(req.config.ksf ? { ksf: req.config.ksf } : {}),
      });
      if (req.op === 'register') {
        const r = await client.registerKey(req.password, req.key);
        scope.postMessage({ id: req.id, ok: true, attemptsRemaining: r.attemptsRemaining });
      } else {
        const key = await client.recoverKey(req.password);
        scope.postMessage({ id: req.id, ok: true, key });
      }
    } catch (e) {
      const err = e as { code?: string; message?: string; details?: { attemptsRemaining?: number } };
      scope.postMessage({
        id: req.id,
        ok: false,
        code: err.code ?? 'INTERNAL',
        message: err.message ?? String(e),
        ...(err.details?.attemptsRemaining !== undefined ? { attemptsRemaining: err.details.attemptsRemaining } : {}),
      });
    }
  })();
};
