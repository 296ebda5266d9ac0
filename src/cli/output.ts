import { BkvError } from '../shared/errors.js';
import { exitCodeFor } from './exit-codes.js';

/** How a command talks to its user: human lines on stderr/stdout, or one JSON document on stdout. */
export interface Output {
  readonly json: boolean;
  /** Narration for humans (stderr, so stdout stays clean for data); silent in --json mode. */
  info(line: string): void;
  /** The command's result: printed as text for humans, or as a JSON document. */
  result(text: string, data: Record<string, unknown>): void;
}

export function makeOutput(json: boolean): Output {
  return {
    json,
    info(line) {
      if (!json) process.stderr.write(line + '\n');
    },
    result(text, data) {
      if (json) process.stdout.write(JSON.stringify({ ok: true, ...data }) + '\n');
      else if (text) process.stdout.write(text + '\n');
    },
  };
}

/** Prints an error as one line (or a JSON document) and returns the exit code for it. */
export function reportError(err: unknown, json: boolean): number {
  const code = exitCodeFor(err);
  if (err instanceof BkvError) {
    const message = err.message.replace(/\s*\n\s*/g, ' ');
    if (json) {
      process.stdout.write(
        JSON.stringify({ ok: false, error: { code: err.code, message, ...err.details } }) + '\n',
      );
    } else {
      process.stderr.write(`bkv: error: ${message}\n`);
    }
  } else {
    const e = err as Error;
    if (json) {
      process.stdout.write(JSON.stringify({ ok: false, error: { code: 'INTERNAL', message: String(e?.message ?? e) } }) + '\n');
    } else {
      process.stderr.write(`bkv: internal error: ${e?.stack ?? String(e)}\n`);
    }
  }
  return code;
}
