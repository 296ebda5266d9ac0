/**
 * The demo is a list of named steps run in order over one shared context. Later features
 * (password escrow, fleet validation, witness log) add their steps to `demoSteps` in their place.
 */
export interface DemoContext {
  /** A private temporary directory, removed when the demo ends. */
  workDir: string;
  /** Narration line for the user. */
  say(line: string): void;
  /** Values steps hand to later steps (sample directory, key, backup path, ...). */
  state: Map<string, unknown>;
}

export interface DemoStep {
  name: string;
  run(ctx: DemoContext): Promise<void>;
}

/** Reads a value an earlier step stored, failing clearly when the step order is wrong. */
export function need<T>(ctx: DemoContext, name: string): T {
  if (!ctx.state.has(name)) throw new Error(`demo step order: '${name}' was not set by an earlier step`);
  return ctx.state.get(name) as T;
}

/** Registers a clean-up (stop a server, kill processes) that the demo runner calls at the end. */
export function onCleanup(ctx: DemoContext, fn: () => Promise<void>): void {
  const list = (ctx.state.get('cleanup') as (() => Promise<void>)[] | undefined) ?? [];
  list.push(fn);
  ctx.state.set('cleanup', list);
}
