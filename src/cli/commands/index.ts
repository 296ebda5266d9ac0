import type { CommandModule } from '../context.js';

/** Every `bkv` command group. One module per group; add a line here to add a group. */
export const commandModules: CommandModule[] = [];
