import type { Command } from 'commander';

/** What a command module gets besides the program: a way to set the exit code without throwing. */
export interface CliContext {
  setExitCode(code: number): void;
}

export type CommandModule = (program: Command, ctx: CliContext) => void;

/**
 * Returns the command group `name`, creating it on first use, so several modules can add
 * subcommands to one group (`bkv fleet status` and `bkv fleet deploy` live in different files).
 */
export function commandGroup(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}
