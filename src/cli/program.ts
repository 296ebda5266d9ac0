import { Command, CommanderError } from 'commander';
import type { CommandModule } from './context.js';
import { EXIT } from './exit-codes.js';
import { reportError } from './output.js';
import { installNativeSha256 } from '../node/native-sha256.js';

/** Runs `argv` against a `bkv` program made of `modules`; resolves to the process exit code. */
export async function runProgram(argv: string[], modules: readonly CommandModule[]): Promise<number> {
  installNativeSha256();
  const program = new Command('bkv')
    .description('backup-key-vault: end-to-end encrypted backups with a guess-limited key vault')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      writeOut: (s) => process.stdout.write(s),
    });
  let exitCode: number = EXIT.OK;
  const ctx = {
    setExitCode(code: number) {
      exitCode = code;
    },
  };
  for (const register of modules) register(program, ctx);
  // Every subcommand inherits the override so usage errors anywhere give EXIT.USAGE.
  const applyOverride = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(applyOverride);
  };
  applyOverride(program);
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return EXIT.OK;
      }
      return EXIT.USAGE;
    }
    const json = argv.includes('--json');
    return reportError(err, json);
  }
}
