import type { CommandModule } from '../context.js';
import { backupCommands } from './backup.js';
import { demoCommand } from './demo.js';
import { keyCommands } from './key.js';
import { vaultCommands } from './vault.js';
import { witnessCommands } from './witness.js';
import { auditCommands } from './audit.js';
import { memberCommands } from './member.js';
import { upCommand } from './up.js';
import { fleetCommands } from './fleet.js';

/** Every `bkv` command group. One module per group; add a line here to add a group. */
export const commandModules: CommandModule[] = [backupCommands, keyCommands, vaultCommands, demoCommand, witnessCommands, auditCommands, memberCommands, upCommand, fleetCommands];
import { hsmCommands } from './hsm.js';
import { fleetDeployCommands } from './fleet-deploy.js';
commandModules.push(hsmCommands, fleetDeployCommands);
