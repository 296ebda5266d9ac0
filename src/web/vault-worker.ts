/**
 * The password escrow runs in this Web Worker: OPAQUE's Argon2id (64 MiB, WebAssembly) takes a
 * second or more, and the page must stay responsive meanwhile. The worker talks to the gateway
 * at the page's own origin and learns the fleet keys as the app's configuration says (over the
 * air under a pinned witness key, or pinned keys).
 *
 * `backup-key`: the key for a new password backup, the one already escrowed for the account
 * (recovered with the password; a wrong one registers nothing) unless `replace` escrows a new one.
 * `recover`: the key of a backup whose header names `keyId`; a vault holding another key for the
 * account answers WRONG_KEY before any guess is spent.
 */
import { VaultClient } from '../client/sdk/vault-client.js';
import { fleetFromConfig, transportFor, type WebConfig } from './vault-config.js';

export type WorkerRequest =
  | { id: number; op: 'backup-key'; account: string; password: string; replace: boolean; config: WebConfig }
  | { id: number; op: 'recover'; account: string; password: string; keyId: Uint8Array; config: WebConfig };

/** An error's code, message and details (plain data: attempts left, key ids) cross to the page. */
export type WorkerReply =
  | { id: number; ok: true; key: Uint8Array; escrow?: 'reused' | 'registered'; attemptsRemaining?: number }
  | { id: number; ok: false; code: string; message: string; details: Record<string, unknown> };

const scope = self as unknown as { onmessage: ((ev: MessageEvent<WorkerRequest>) => void) | null; postMessage(m: WorkerReply): void };

/** Only JSON-like values of an error's details are sent back (no functions or class instances). */
function plainDetails(d: unknown): Record<string, unknown> {
  if (!d || typeof d !== 'object') return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
  }
  return out;
}

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
      if (req.op === 'backup-key') {
        const r = await client.keyForNewBackup(req.password, { replace: req.replace });
        scope.postMessage({ id: req.id, ok: true, key: r.key, escrow: r.escrow, attemptsRemaining: r.attemptsRemaining });
      } else {
        const key = await client.recoverKey(req.password, { keyId: req.keyId });
        scope.postMessage({ id: req.id, ok: true, key });
      }
    } catch (e) {
      const err = e as { code?: string; message?: string; details?: unknown };
      scope.postMessage({ id: req.id, ok: false, code: err.code ?? 'INTERNAL', message: err.message ?? String(e), details: plainDetails(err.details) });
    }
  })();
};
