import { commandModulesFor } from './commands/index.js';
import { runProgram } from './program.js';

/** Runs the `bkv` command line and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  return runProgram(argv, await commandModulesFor(argv));
}
