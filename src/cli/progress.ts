/** A byte-count progress bar on stderr, shown only on a terminal and never in --json mode. */
export interface Progress {
  add(bytes: number): void;
  stop(): void;
}

export async function makeProgress(label: string, totalBytes: number, json: boolean): Promise<Progress> {
  if (json || !process.stderr.isTTY || totalBytes < 8 * 1024 * 1024) return { add() {}, stop() {} };
  const { default: cliProgress } = await import('cli-progress'); // loaded only when shown
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done}/{size} MB`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const mb = (n: number) => (n / 1e6).toFixed(0);
  let done = 0;
  bar.start(totalBytes, 0, { done: '0', size: mb(totalBytes) });
  return {
    add(bytes) {
      done = Math.min(totalBytes, done + bytes);
      bar.update(done, { done: mb(done) });
    },
    stop() {
      bar.stop();
    },
  };
}
