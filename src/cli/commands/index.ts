import type { CommandModule } from '../context.js';

/**
 * Every `bkv` command group, loaded on demand: `bkv backup …` imports only the backup module, so
 * the common commands start fast and small; `bkv --help` loads them all. Add a line to add a group.
 */
const groups: Record<string, () => Promise<CommandModule[]>> = {
  backup: async () => [(await import('./backup.js')).backupCommands, (await import('./backup-check.js')).backupCheckCommands],
  key: async () => [(await import('./key.js')).keyCommands],
  vault: async () => [(await import('./vault.js')).vaultCommands],
  demo: async () => [(await import('./demo.js')).demoCommand],
  witness: async () => [(await import('./witness.js')).witnessCommands],
  audit: async () => [(await import('./audit.js')).auditCommands],
  member: async () => [(await import('./member.js')).memberCommands],
  up: async () => [(await import('./up.js')).upCommand],
  fleet: async () => [(await import('./fleet.js')).fleetCommands, (await import('./fleet-deploy.js')).fleetDeployCommands],
  hsm: async () => [(await import('./hsm.js')).hsmCommands],
  web: async () => [(await import('./web.js')).webCommand],
};

/** The command modules needed for `argv` (all of them when the group is unknown or absent). */
export async function commandModulesFor(argv: readonly string[]): Promise<CommandModule[]> {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  const only = first !== undefined ? groups[first] : undefined;
  if (only) return only();
  return (await Promise.all(Object.values(groups).map((load) => load()))).flat();
}
