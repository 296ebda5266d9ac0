import type { Command } from 'commander';

/** What a command module gets besides the program: a way to set the exit code without throwing. */
export interface CliContext {
  setExitCode(code: number): void;
}

export type CommandModule = (program: Command, ctx: CliContext) => void;
