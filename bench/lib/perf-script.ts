/**
 * Parses the text `perf script -F pid,tid,ip,sym,dso` prints for a recording with call graphs
 * (`perf record -g`) into samples: each sample's process and thread, and its frames leaf first.
 * Used by scripts/perf-summary.ts.
 *
 * A sample starts with a line "pid/tid", which perf right-aligns (so it may start with spaces when
 * the ids are short); each frame follows on a line of its own, indented by a tab:
 * "\t    7f38382129a6 JS:*apply file:///…/record-store/sqlite.js:196:10 (/tmp/perf-1.map)".
 */
export interface PerfSample {
  pid: string;
  tid: string;
  /** Frames, leaf first: the symbol and its object (binary, map file or [kernel.kallsyms]). */
  frames: Array<{ sym: string; dso: string }>;
}

const HEAD = /^\s*(\d+)\/(\d+)\s*$/;
const FRAME = /^\s*[0-9a-f]+ (.*) \(([^()]*)\)\s*$/;

export function parsePerfScript(text: string): PerfSample[] {
  const out: PerfSample[] = [];
  let cur: PerfSample | null = null;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const head = HEAD.exec(line);
    if (head) {
      cur = { pid: head[1]!, tid: head[2]!, frames: [] };
      out.push(cur);
      continue;
    }
    const m = FRAME.exec(line);
    if (cur && m) cur.frames.push({ sym: m[1]!, dso: m[2]! });
  }
  return out;
}
