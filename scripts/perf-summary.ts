/**
 * Summarises the Linux perf recordings `bench/fleet.bench.ts --perf DIR` leaves (one per phase,
 * registration.perf.data and recovery.perf.data, with phases.json naming each process's role): per
 * role (leader, follower: the mean of the followers, gateway), each category's CPU milliseconds per
 * operation and share, the main thread apart from the process's other threads.
 *
 *   npx tsx scripts/perf-summary.ts DIR [--top 15]
 *
 * perf's software CPU clock samples a thread only while it runs on a CPU, in user space or in the
 * kernel, so a sample is CPU time (1 / the recording's frequency each) wherever it was spent:
 * unlike a V8 profile, a syscall that blocks (an fdatasync, SQLite's WAL sync) counts only for the
 * CPU the kernel spent, and the helper threads (V8's compiler and GC threads, libuv's thread pool)
 * and the kernel's work for the process (loopback TCP, file writes, wake-ups) are in it. V8's
 * compiled code is named by the jitted-*.so files `perf inject --jit` wrote into DIR (from the
 * processes' jit dumps), so DIR must stay whole until the summary has run.
 *
 * Each sample goes to one category by its stack (leaf first): in the kernel by what the kernel was
 * doing; on the main thread in user space by the same rules as scripts/cpuprofile-summary.ts (a
 * project file or package decides, scripts/profile-categories.ts); on other threads by the
 * thread's job.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePerfScript, type PerfSample } from '../bench/lib/perf-script.js';
import { DECIDING, INTERNAL, PASS_THROUGH } from './profile-categories.js';

interface Phases {
  roles: Record<string, string>;
  users: number;
  recoveries: number;
  perfHz?: number;
}

/** `perf script` output of one recording, parsed into samples. */
function readSamples(file: string): PerfSample[] {
  return parsePerfScript(execFileSync('perf', ['script', '-i', file, '-F', 'pid,tid,ip,sym,dso'], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
}

/** The source location V8 wrote into a perf map symbol (`JS:*name file:///…:line:col`), or ''. */
function urlOf(sym: string): string {
  const m = /\s((?:file:\/\/|node:)\S+?)(?::\d+)*$/.exec(sym);
  return m ? m[1]! : '';
}

const isKernel = (f: { dso: string }) => f.dso.includes('kernel');

function kernelCategory(frames: PerfSample['frames']): string {
  const s = frames.filter(isKernel).map((f) => f.sym).join(' ');
  if (/fsync|fdatasync|jbd2|ext4|blk_|submit_bio|iomap|filemap|generic_perform_write|vfs_write|ksys_pwrite/.test(s) && !/sock|tcp/.test(s)) {
    return 'kernel: file writes and syncs';
  }
  if (/tcp|sock|inet|skb|net_rx|__dev_queue|loopback|ip_(finish|output|rcv)/.test(s)) return 'kernel: loopback TCP';
  if (/schedule|futex|epoll|eventfd|hrtimer|finish_task_switch|wake_up|try_to_wake/.test(s)) return 'kernel: waits and wake-ups';
  if (/page_fault|mmap|munmap|brk|madvise|clear_page|tlb/.test(s)) return 'kernel: memory (page faults, mappings)';
  return 'kernel: other';
}

function mainThreadCategory(frames: PerfSample['frames']): string {
  if (frames.length > 0 && isKernel(frames[0]!)) return kernelCategory(frames);
  const leaf = frames[0];
  if (!leaf) return 'unknown';
  if (/Heap::|Scavenge|MarkCompact|Marking|Sweeper|GCTracer|ArrayBufferSweeper/.test(leaf.sym)) return 'GC';
  for (const f of frames) {
    if (/better_sqlite3/.test(f.dso)) return 'SQLite';
    if (!f.sym.startsWith('JS:')) continue;
    const url = urlOf(f.sym);
    // WebAssembly (OPAQUE's Rust compiled to wasm) has Rust paths for names and no source URL.
    if (!url && f.sym.includes('::')) return 'OPAQUE';
    if (!url || PASS_THROUGH.test(url)) continue;
    for (const [name, re] of DECIDING) if (re.test(url)) return name;
  }
  for (const f of frames) {
    const url = urlOf(f.sym);
    for (const [name, re] of INTERNAL) if (url && re.test(url)) return name;
  }
  // glibc (malloc, memmove) has no frame pointers, so its callers are lost; V8's builtins reached
  // from there, and V8 and Node's own C++, have no source location to decide by.
  return 'V8 and native (unattributed)';
}

function otherThreadCategory(frames: PerfSample['frames']): string {
  const s = frames.map((f) => f.sym).join(' ');
  if (/compiler::|Compile|Maglev|Turbofan|TurboFan|OptimizingCompile|Baseline.*Batch/.test(s)) return 'threads: V8 compiler';
  if (/Heap::|Scavenge|Marking|Sweeper|GC|Concurrent(Marking|Sweeper)|ArrayBufferSweeper|Evacuat/.test(s)) return 'threads: V8 GC';
  if (/better_sqlite3|sqlite3/.test(s)) return 'threads: SQLite (checkpoints)';
  if (/uv__fs_work|uv__work|worker/.test(s) || /fsync|fdatasync|pwrite|write/.test(s)) return 'threads: libuv pool (file writes, syncs)';
  return 'threads: other';
}

function main(): void {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 15;
  const inclusiveAt = args.indexOf('--inclusive');
  const inclusiveRole = inclusiveAt >= 0 ? args.splice(inclusiveAt, 2)[1] : undefined;
  const dir = args[0];
  if (!dir || !existsSync(join(dir, 'phases.json'))) {
    console.error('usage: tsx scripts/perf-summary.ts DIR [--top N] [--inclusive leader|follower|gateway]   (DIR from bench/fleet.bench.ts --perf DIR)');
    process.exit(2);
  }
  const phases = JSON.parse(readFileSync(join(dir, 'phases.json'), 'utf8')) as Phases;
  const hz = phases.perfHz ?? 999;
  const roleOrder = (r: string) => (r === 'leader' ? 0 : r === 'follower' ? 1 : r === 'gateway' ? 2 : 3);
  for (const [phase, ops] of [['registration', phases.users], ['recovery', phases.recoveries]] as const) {
    const file = join(dir, `${phase}.perf.data`);
    if (!existsSync(file)) continue;
    const samples = readSamples(file);
    // role → category → samples; role → number of processes; role → leaf symbol → samples (main thread)
    const cats = new Map<string, Map<string, number>>();
    const procs = new Map<string, Set<string>>();
    const leaves = new Map<string, Map<string, number>>();
    // JavaScript function (name and location) → main-thread samples with it anywhere on the stack, for --inclusive ROLE.
    const inclusive = new Map<string, number>();
    let inclusiveSamples = 0;
    for (const s of samples) {
      const role = phases.roles[s.pid];
      if (!role) continue;
      const main = s.pid === s.tid;
      const cat = main ? mainThreadCategory(s.frames) : otherThreadCategory(s.frames);
      const c = cats.get(role) ?? new Map<string, number>();
      c.set(cat, (c.get(cat) ?? 0) + 1);
      cats.set(role, c);
      (procs.get(role) ?? procs.set(role, new Set()).get(role)!).add(s.pid);
      if (main && role === inclusiveRole) {
        inclusiveSamples++;
        const seen = new Set<string>();
        for (const f of s.frames) if (f.sym.startsWith('JS:') && urlOf(f.sym)) seen.add(f.sym.replace(/^JS:[*~^+]?/, '').replace(/file:\/\/\S*?\/(dist|src|node_modules)\//, '$1/').slice(0, 140));
        for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + 1);
      }
      if (main && s.frames[0]) {
        const l = leaves.get(role) ?? new Map<string, number>();
        const name = s.frames[0].sym.replace(/^JS:[*~^+]?/, '').slice(0, 120);
        l.set(name, (l.get(name) ?? 0) + 1);
        leaves.set(role, l);
      }
    }
    const roles = [...cats.keys()].sort((a, b) => roleOrder(a) - roleOrder(b));
    const n = (r: string) => procs.get(r)!.size;
    const total = (r: string) => [...cats.get(r)!.values()].reduce((a, b) => a + b, 0);
    const msPerOp = (count: number, r: string) => ((count / hz) * 1000) / ops / n(r);
    const all = new Set<string>();
    for (const c of cats.values()) for (const k of c.keys()) all.add(k);
    const weight = (k: string) => roles.reduce((a, r) => a + (cats.get(r)!.get(k) ?? 0), 0);
    console.log(`\n## ${phase} (${ops} operations, perf at ${hz} Hz): CPU ms per operation (share of the process)\n`);
    console.log(`| category | ${roles.map((r) => (n(r) > 1 ? `${r} (mean of ${n(r)})` : r)).join(' | ')} |`);
    console.log(`|---|${roles.map(() => '---:|').join('')}`);
    for (const k of [...all].sort((a, b) => weight(b) - weight(a))) {
      const cell = (r: string) => {
        const v = cats.get(r)!.get(k) ?? 0;
        return v === 0 ? '' : `${msPerOp(v, r).toFixed(3)} (${((100 * v) / total(r)).toFixed(1)} %)`;
      };
      console.log(`| ${k} | ${roles.map(cell).join(' | ')} |`);
    }
    console.log(`| **all** | ${roles.map((r) => `**${msPerOp(total(r), r).toFixed(2)}**`).join(' | ')} |`);
    for (const r of roles) {
      const l = leaves.get(r);
      if (!l) continue;
      const sum = [...l.values()].reduce((a, b) => a + b, 0);
      console.log(`\n${phase}, ${r}: main thread, top ${top} leaf symbols (share of the main thread's samples)`);
      for (const [name, v] of [...l].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * v) / sum).toFixed(1).padStart(5)} %  ${name}`);
    }
    if (inclusiveRole && inclusiveSamples > 0) {
      console.log(`\n${phase}, ${inclusiveRole}: main thread, top ${top} JavaScript functions by inclusive CPU ms per operation (on the stack of a sample)`);
      for (const [name, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
        console.log(`  ${msPerOp(v, inclusiveRole).toFixed(3).padStart(7)}  ${name}`);
      }
    }
  }
}

main();
