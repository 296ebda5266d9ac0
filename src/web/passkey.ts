import type { WebConfig } from './vault-config.js';
export async function prfSupportMessage(): Promise<string | null> {
  return null;
}
export async function passkeyEscrow(_c: WebConfig, _account: string, _k: Uint8Array): Promise<void> {
  throw new Error('passkeys are not available yet');
}
export async function passkeyRecover(_c: WebConfig, _account: string): Promise<Uint8Array> {
  throw new Error('passkeys are not available yet');
}
