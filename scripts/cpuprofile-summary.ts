/**
 * Summarises V8 CPU profiles (`node --cpu-prof`) by category and by self time, so a fleet profile
 * can be reproduced and compared between changes.
 *
 *   npx tsx scripts/cpuprofile-summary.ts DIR [--top 15]
 *   npx tsx scripts/cpuprofile-summary.ts FILE.cpuprofile… [--top 15]
 *
 * DIR is what `bench/fleet.bench.ts --profile DIR` leaves: one .cpuprofile per process and
 * phases.json (each process's pid and role, the monotonic time in µs at which the idle, registration
 * and recovery phases began and ended, each process's CPU seconds at those marks, and the number of
 * operations). With it, each phase is summarised on its own: per role (leader, follower: the mean of
 * the followers, gateway) each category's share of the main thread's busy samples, the busy sampled
 * milliseconds per operation, and the process CPU per operation from /proc. The two differ: samples
 * are wall time of the main thread (a descheduled thread still counts), /proc counts every thread
 * and the profiler's own sampling (a signal every millisecond), so read the shares from a profiled
 * run and the CPU from an unprofiled one. Without phases.json, whole profiles, in sampled ms.

 * A sample goes to the category of the innermost frame that decides one: a project file or a
 * package that is a concern of its own (OPAQUE, HPKE, SQLite, HTTP). Crypto primitives (@noble,
 * node:crypto) and Node internals (sockets, streams, timers) do not decide: their time goes to the
 * caller (a MAC is "consensus MACs" whether node:crypto or @noble computed it); only when no frame
 * decides does the innermost internal frame name the category.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DECIDING, INTERNAL, PASS_THROUGH } from './profile-categories.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Phases {
  roles: Record<string, string>;
  phases: Record<string, number>;
  cpu?: Record<string, Record<string, number>>;
  users: number;
  recoveries: number;
}

function builtinCategory(f: CallFrame): string | null {
  if (f.url !== '') return null;
  switch (f.functionName) {
    case '(idle)':
      return 'idle';
    case '(garbage collector)':
      return 'GC';
    case '(program)':
      return 'V8 and native (unattributed)';
    case 'parse':
    case 'stringify':
      return 'JSON';
    default:
      return null;
  }
}

function categorise(stack: CallFrame[]): string {
  // stack[0] is the leaf.
  const leafBuiltin = builtinCategory(stack[0]!);
  if (leafBuiltin && leafBuiltin !== 'JSON') return leafBuiltin;
  for (const f of stack) {
    const b = builtinCategory(f);
    if (b === 'JSON') return b;
    if (!f.url || PASS_THROUGH.test(f.url)) continue;
    for (const [name, re] of DECIDING) if (re.test(f.url)) return name;
  }
  for (const f of stack) for (const [name, re] of INTERNAL) if (re.test(f.url)) return name;
  return 'other';
}

function shortName(f: CallFrame): string {
  const url = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url}${url ? `:${f.lineNumber + 1}` : ''}`;
}

interface Summary {
  /** category → sampled µs */
  byCategory: Map<string, number>;
  /** function → sampled µs of self time */
  bySelf: Map<string, number>;
  busyUs: number;
}

function summarise(p: Profile, from = -Infinity, to = Infinity): Summary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const catOf = new Map<number, string>();
  const category = (id: number) => {
    let c = catOf.get(id);
    if (c === undefined) {
      const stack: CallFrame[] = [];
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame);
      c = categorise(stack);
      catOf.set(id, c);
    }
    return c;
  };
  const s: Summary = { byCategory: new Map(), bySelf: new Map(), busyUs: 0 };
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    // A sample stands for the time until the next one.
    const dt = Math.min(p.timeDeltas[i + 1] ?? 0, 10_000);
    const id = p.samples[i]!;
    const cat = category(id);
    if (cat === 'idle') continue;
    s.busyUs += dt;
    s.byCategory.set(cat, (s.byCategory.get(cat) ?? 0) + dt);
    const name = cat === 'GC' || cat.startsWith('V8') ? cat : shortName(byId.get(id)!.callFrame);
    s.bySelf.set(name, (s.bySelf.get(name) ?? 0) + dt);
  }
  return s;
}

function pidOf(file: string): string {
  return basename(file).split('.')[3] ?? file;
}

function main(): void {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 15;
  if (args.length === 0) {
    console.error('usage: tsx scripts/cpuprofile-summary.ts DIR | FILE.cpuprofile… [--top N]');
    process.exit(2);
  }
  let files: string[] = [];
  let phases: Phases | null = null;
  for (const a of args) {
    if (statSync(a).isDirectory()) {
      files.push(...readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(a, f)));
      try {
        phases = JSON.parse(readFileSync(join(a, 'phases.json'), 'utf8')) as Phases;
      } catch {
        /* no phases: whole profiles */
      }
    } else files.push(a);
  }
  files = files.sort();
  const profiles = files.map((f) => ({ pid: pidOf(f), profile: JSON.parse(readFileSync(f, 'utf8')) as Profile }));
  const windows: Array<{ name: string; from: number; to: number; ops: number; start?: string; end?: string }> = phases
    ? [
        { name: 'registration', from: phases.phases.registrationStart!, to: phases.phases.registrationEnd!, ops: phases.users, start: 'registrationStart', end: 'registrationEnd' },
        { name: 'recovery', from: phases.phases.recoveryStart!, to: phases.phases.recoveryEnd!, ops: phases.recoveries, start: 'recoveryStart', end: 'recoveryEnd' },
        // Before the registrations the fleet serves nothing for a few seconds: its cost per second
        // there is what ticks, heartbeats and the gateway's polls cost (ops = seconds).
        ...(phases.phases.idleStart !== undefined
          ? [{ name: 'idle fleet (per second)', from: phases.phases.idleStart, to: phases.phases.idleEnd!, ops: (phases.phases.idleEnd! - phases.phases.idleStart) / 1e6, start: 'idleStart', end: 'idleEnd' }]
          : []),
      ]
    : [{ name: 'whole profile', from: -Infinity, to: Infinity, ops: 1 }];
  const roleOf = (pid: string) => phases?.roles[pid] ?? pid;
  const roleOrder = (r: string) => (r === 'leader' ? 0 : r === 'follower' ? 1 : r === 'gateway' ? 2 : 3);
  for (const w of windows) {
    // Per role: category → sampled µs, busy sampled µs, /proc CPU seconds (followers: summed, shown as means).
    const perRole = new Map<string, { n: number; cats: Map<string, number>; self: Map<string, number>; busy: number; cpu: number }>();
    for (const { pid, profile } of profiles) {
      const s = summarise(profile, w.from, w.to);
      const cpuSecs = phases?.cpu?.[pid] && w.start && w.end ? phases.cpu[pid]![w.end]! - phases.cpu[pid]![w.start]! : NaN;
      const role = roleOf(pid);
      const r = perRole.get(role) ?? { n: 0, cats: new Map(), self: new Map(), busy: 0, cpu: 0 };
      r.n++;
      for (const [c, us] of s.byCategory) r.cats.set(c, (r.cats.get(c) ?? 0) + us);
      for (const [f, us] of s.bySelf) r.self.set(f, (r.self.get(f) ?? 0) + us);
      r.busy += s.busyUs;
      r.cpu += cpuSecs;
      perRole.set(role, r);
    }
    const roles = [...perRole.keys()].sort((a, b) => roleOrder(a) - roleOrder(b) || a.localeCompare(b));
    const per = phases ? ' per operation' : '';
    console.log(`\n## ${w.name}${phases ? ` (${+w.ops.toFixed(2)} ${w.name.includes('per second') ? 'seconds' : 'operations'})` : ''}: share of busy samples by category\n`);
    const cols = roles.map((r) => (perRole.get(r)!.n > 1 ? `${r} (mean of ${perRole.get(r)!.n})` : r));
    const fleetCol = perRole.size > 1;
    console.log(`| category | ${cols.join(' | ')} |${fleetCol ? ' all processes |' : ''}`);
    console.log(`|---|${roles.map(() => '---:|').join('')}${fleetCol ? '---:|' : ''}`);
    const allBusy = roles.reduce((a, r) => a + perRole.get(r)!.busy, 0);
    const allCat = (c: string) => roles.reduce((a, r) => a + (perRole.get(r)!.cats.get(c) ?? 0), 0);
    const cats = new Set<string>();
    for (const r of perRole.values()) for (const c of r.cats.keys()) cats.add(c);
    const pct = (x: number, of: number) => (of > 0 ? `${((100 * x) / of).toFixed(1)} %` : '');
    for (const c of [...cats].sort((a, b) => allCat(b) - allCat(a))) {
      console.log(`| ${c} | ${roles.map((r) => pct(perRole.get(r)!.cats.get(c) ?? 0, perRole.get(r)!.busy)).join(' | ')} |${fleetCol ? ` ${pct(allCat(c), allBusy)} |` : ''}`);
    }
    const ms = (x: number) => x.toFixed(phases ? 2 : 0);
    const sampled = (r: string) => ms(perRole.get(r)!.busy / 1000 / w.ops / perRole.get(r)!.n);
    console.log(`| busy samples, ms${per} | ${roles.map(sampled).join(' | ')} |${fleetCol ? ` ${ms(allBusy / 1000 / w.ops)} |` : ''}`);
    if (phases?.cpu) {
      const cpu = (r: string) => ms((perRole.get(r)!.cpu * 1000) / w.ops / perRole.get(r)!.n);
      const allCpu = roles.reduce((a, r) => a + perRole.get(r)!.cpu, 0);
      console.log(`| process CPU (/proc), ms${per} | ${roles.map(cpu).join(' | ')} |${fleetCol ? ` ${ms((allCpu * 1000) / w.ops)} |` : ''}`);
    }
    for (const r of roles) {
      const x = perRole.get(r)!;
      console.log(`\n${w.name}, ${r}: top ${top} by self time (share of busy samples${x.n > 1 ? `, ${x.n} processes` : ''})`);
      for (const [f, v] of [...x.self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v, x.busy).padStart(7)}  ${f}`);
    }
  }
}

main();
