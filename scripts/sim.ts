/**
 * Deterministic consensus simulator.
 *   npm run sim -- --seeds N --ops M [--seed S] [--members 5] [--no-faults] [--workload vault|escrow] [--groups G]
 * With --groups G (1..8): G replication groups (plus one empty one) over the members, range transfers
 * interleaved with the faults (vault workload; src/sim/groups.ts, docs/groups.md).
 * Runs seeds S, S+1, ... S+N-1 (S defaults to 1). A failing seed prints one command that reproduces it.
 */
import { runSimulation } from '../src/sim/simulator.js';
import type { WorkloadName } from '../src/sim/simulator.js';
import { runGroupSimulation } from '../src/sim/groups.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

const explicitSeed = process.argv.includes('--seed');
const first = arg('seed', 1);
const seeds = arg('seeds', explicitSeed ? 1 : 20);
const ops = arg('ops', 300);
const members = arg('members', 5);
const faults = !process.argv.includes('--no-faults');
const wi = process.argv.indexOf('--workload');
const workload = (wi < 0 ? 'vault' : process.argv[wi + 1]) as WorkloadName;
if (workload !== 'vault' && workload !== 'escrow') {
  console.error('--workload must be vault or escrow');
  process.exit(2);
}
if (members % 2 === 0 || members < 1 || members > 9) {
  console.error('--members must be odd, 1..9');
  process.exit(2);
}

const groups = process.argv.includes('--groups') ? arg('groups', 3) : 0;
if (process.argv.includes('--groups') && (groups < 1 || groups > 8 || workload !== 'vault')) {
  console.error('--groups needs 1..8 and the vault workload');
  process.exit(2);
}

const t0 = performance.now();
let failed = 0;
if (groups > 0) {
  for (let s = first; s < first + seeds; s++) {
    const r = await runGroupSimulation({ seed: s, ops, members, groups, faults });
    const st = r.stats;
    console.log(
      `seed ${s}: ${r.ok ? 'ok' : 'FAIL'} ops ok=${st.opsOk} failed=${st.opsFailed} wrong-group=${st.wrongGroup} committed=${st.committed} ` +
        `transfers started=${st.transfersStarted} done=${st.transfersDone} aborted=${st.transfersAborted} replays refused=${st.replaysRefused} leaders on ${st.leaderMembers} members ` +
        `crashes=${st.crashes} rollbacks=${st.rollbacks} partitions=${st.partitions} store faults=${st.storeFaults} misrouted=${st.misrouted} sim=${st.simTimeMs}ms heal=${st.healTimeMs}ms`,
    );
    if (!r.ok) {
      failed++;
      for (const v of r.violations) console.log(`  violation: ${v}`);
      console.log(`  reproduce: ${r.reproduce}`);
    }
  }
  console.log(`${seeds - failed}/${seeds} seeds passed (${ops} ops, ${members} members, ${groups} groups) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  process.exit(failed > 0 ? 1 : 0);
}
for (let s = first; s < first + seeds; s++) {
  const r = await runSimulation({ seed: s, ops, members, faults, workload });
  const st = r.stats;
  const line =
    `seed ${s}: ${r.ok ? 'ok' : 'FAIL'} ops ok=${st.opsOk} failed=${st.opsFailed} committed=${st.committed} ` +
    `crashes=${st.crashes} rollbacks=${st.rollbacks} learners=${st.learnerBoots} partitions=${st.partitions} ` +
    `elections=${st.elections} snapshots=${st.snapshotsInstalled} forged/corrupt dropped=${st.droppedAuth + st.droppedMalformed} ` +
    `store faults=${st.storeFaults} repairs=${st.storeRepairs} scrubbed=${st.storeScrubbed} ` +
    `disk=${st.diskWrites} writes/${(st.diskBytes / 1024).toFixed(0)}KiB sim=${st.simTimeMs}ms heal=${st.healTimeMs}ms`;
  console.log(line);
  if (!r.ok) {
    failed++;
    for (const v of r.violations) console.log(`  violation: ${v}`);
    console.log(`  reproduce: ${r.reproduce}`);
  }
}
const secs = ((performance.now() - t0) / 1000).toFixed(1);
console.log(`${seeds - failed}/${seeds} seeds passed (${ops} ops, ${members} members, ${workload} workload) in ${secs}s`);
process.exit(failed > 0 ? 1 : 0);
