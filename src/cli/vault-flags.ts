import type { Command } from 'commander';

/** Command-line flags that pick a vault and an identity (light: no crypto imported here). */
export const DEFAULT_VAULT_URL = 'http://127.0.0.1:7410';

export interface VaultOptions {
  vault?: string;
  fleetKeys?: string;
  account?: string;
  token?: string;
  witnessKey?: string;
  namespace?: string;
  checkpointStore?: string;
  /** Witness policy file: k of n cosignatures required on the witness checkpoint. */
  witnessPolicy?: string;
  /** Argon2id memory in KiB (tests and demos lower it; see docs/vault.md). */
  ksfMemory?: string;
}

/** Adds the options that say which vault to use and who we are. */
export function addVaultOptions(cmd: Command): Command {
  return cmd
    .option('--vault <url>', `vault gateway URL (env BKV_VAULT_URL, default ${DEFAULT_VAULT_URL})`)
    .option('--fleet-keys <file>', 'pinned fleet public keys, fleet-keys.json (env BKV_FLEET_KEYS)')
    .option('--account <name>', 'account name at the gateway (env BKV_ACCOUNT, default the OS user)')
    .option('--token <jwt>', 'bearer token for the gateway (env BKV_TOKEN; default: ask the development issuer)')
    .option('--witness-key <key>', 'over the air: trust fleet keys vouched for by this witness (env BKV_WITNESS_KEY)')
    .option('--namespace <ns>', 'over the air: the fleet namespace (env BKV_NAMESPACE)')
    .option('--checkpoint-store <file>', 'over the air: where seen witness checkpoints are kept (env BKV_CHECKPOINTS)')
    .option('--witness-policy <file>', 'over the air: require k of n witness cosignatures (env BKV_WITNESS_POLICY; docs/formats/witness-policy.md)')
    .option('--ksf-memory <KiB>', 'Argon2id memory in KiB for a new registration, 64 to 4194304 (env BKV_KSF_MEMORY; default 65536; 3 passes and 4 lanes either way)');
}

