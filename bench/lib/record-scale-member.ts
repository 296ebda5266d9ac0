/**
 * The vault under test in bench/record-scale.bench.ts, in its own process (so its RSS is its
 * own): `startVaultServer` on a loaded directory, on loopback. Talks to the benchmark over IPC:
 * sends `{url, fleetKeysPath}` once listening; answers `'stats'` with its memory, the core's
 * (`RecordState`) memory and the times at which the consensus log was compacted.
 *
 *   node --import tsx bench/lib/record-scale-member.ts --dir D [--store URL] [--snapshot-every N]
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startVaultServer } from '../../src/host/vault-server.js';
import { ROOT_HISTORY, type BatchPoint, type RecordState } from '../../src/trusted/records/record-state.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Heap bytes of one remembered batch point, measured: ROOT_HISTORY points shaped like those
 * `RecordState.apply` keeps (an object of four fields and a fresh 32-byte root), heap before and after.
 */
function bytesPerPoint(): number {
  gc();
  const before = process.memoryUsage();
  const pts: BatchPoint[] = [];
  for (let i = 0; i < ROOT_HISTORY; i++) pts.push({ index: i + 1, root: crypto.getRandomValues(new Uint8Array(32)), count: i, importOpen: false });
  gc();
  const after = process.memoryUsage();
  const per = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / pts.length;
  return pts.length > 0 ? per : 0;
}

/** What `RecordState` holds: its remembered batch points (private; read here for the measurement). */
function coreState(state: RecordState, perPoint: number) {
  const history = (state as unknown as { history: BatchPoint[] }).history.length;
  // Fixed part: the current and base points, counters, health: a few hundred bytes at most.
  const fixed = 3 * perPoint + 128;
  return { history, bytes: history * perPoint + fixed };
}

async function main() {
  const perPoint = bytesPerPoint();
  const store = arg('store');
  const snapshotEvery = Number(arg('snapshot-every') ?? 0);
  const running = await startVaultServer({
    dir: arg('dir')!,
    port: 0,
    logger: false,
    rateLimit: { perAccountPerMinute: 100_000_000, perAddressPerMinute: 100_000_000 },
    ...(store ? { store } : {}),
    ...(snapshotEvery > 0 ? { snapshotEvery } : {}),
  });
  const { member } = running;
  // Compactions: the moments the log's snapshot index moves (wall clock, ms).
  const compactions: number[] = [];
  let snap = member.node.status().snapshotIndex;
  const poll = setInterval(() => {
    const s = member.node.status().snapshotIndex;
    if (s !== snap) {
      compactions.push(Date.now());
      snap = s;
    }
  }, 5);
  process.on('message', (m) => {
    if (m === 'stats') {
      const mem = process.memoryUsage();
      const st = member.node.status();
      process.send!({ rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, core: coreState(member.state, perPoint), perPoint, compactions, count: member.state.count, commitIndex: st.commitIndex, snapshotIndex: st.snapshotIndex });
    } else if (m === 'stop') {
      clearInterval(poll);
      void running.close().then(() => process.exit(0));
    }
  });
  process.send!({ url: running.url, fleetKeysPath: running.fleetKeysPath, count: member.state.count });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
