/**
 * Soak run of the consensus simulator over thousands of seeds.
 *   npm run sim:soak -- [--seeds 2000] [--ops 300] [--from 1] [--workload vault|escrow]
 * Alternates 3-, 5- and 7-member fleets; prints progress and a summary with reproduce commands.
 */
import { runSimulation } from '../src/sim/simulator.js';
import type { WorkloadName } from '../src/sim/simulator.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const seeds = arg('seeds', 2000);
const ops = arg('ops', 300);
const from = arg('from', 1);
const wi = process.argv.indexOf('--workload');
const workload = (wi < 0 ? 'vault' : process.argv[wi + 1]) as WorkloadName;
if (workload !== 'vault' && workload !== 'escrow') {
  console.error('--workload must be vault or escrow');
  process.exit(2);
}
const sizes = [5, 3, 7];
const t0 = performance.now();
const failures: string[] = [];
const totals = { opsOk: 0, opsFailed: 0, crashes: 0, rollbacks: 0, learnerBoots: 0, partitions: 0, snapshotsInstalled: 0 };
for (let k = 0; k < seeds; k++) {
  const seed = from + k;
  const members = sizes[k % sizes.length] as number;
  const r = await runSimulation({ seed, ops, members, workload });
  for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += r.stats[key];
  if (!r.ok) {
    failures.push(`${r.reproduce}  # ${r.violations[0] ?? ''}`);
    console.log(`seed ${seed} FAILED: ${r.violations[0] ?? ''}\n  reproduce: ${r.reproduce}`);
  }
  if ((k + 1) % 50 === 0 || k + 1 === seeds) {
    const secs = (performance.now() - t0) / 1000;
    console.log(`${k + 1}/${seeds} seeds, ${failures.length} failed, ${secs.toFixed(0)}s`);
  }
}
const secs = ((performance.now() - t0) / 1000).toFixed(1);
console.log(`summary: ${seeds - failures.length}/${seeds} seeds passed, ${ops} ops each, ${workload} workload, ${secs}s`);
console.log(`  totals: ${JSON.stringify(totals)}`);
for (const f of failures) console.log(`  ${f}`);
process.exit(failures.length > 0 ? 1 : 0);
