/**
 * Consensus safety invariants, checked after every simulator event:
 * - at most one leader per term;
 * - a committed index never changes its entry (the first application anywhere fixes it);
 * - every member applies entries in increasing index order, each equal to the committed entry.
 */
import type { NodeStatus } from '../trusted/consensus/types.js';
import { equalBytes } from '../shared/bytes.js';

export class SafetyChecker {
  readonly committed = new Map<number, Uint8Array>();
  readonly violations: string[] = [];
  private readonly leaders = new Map<number, number>();
  private readonly applied = new Map<string, number>();

  checkLeaders(statuses: readonly NodeStatus[]): void {
    for (const s of statuses) {
      if (s.role !== 'leader') continue;
      const prev = this.leaders.get(s.term);
      if (prev === undefined) this.leaders.set(s.term, s.id);
      else if (prev !== s.id) this.fail(`two leaders in term ${s.term}: members ${prev} and ${s.id}`);
    }
  }

  /** `who` names one member incarnation (member id plus boot count). */
  onApply(who: string, index: number, entry: Uint8Array): void {
    const last = this.applied.get(who) ?? 0;
    if (index <= last) this.fail(`${who} applied index ${index} after ${last}`);
    this.applied.set(who, index);
    const known = this.committed.get(index);
    if (known === undefined) this.committed.set(index, entry.slice());
    else if (!equalBytes(known, entry)) this.fail(`committed entry at index ${index} changed (seen by ${who})`);
  }

  onRestored(who: string, index: number): void {
    const last = this.applied.get(who) ?? 0;
    if (index < last) this.fail(`${who} restored a snapshot at ${index} after applying ${last}`);
    this.applied.set(who, index);
  }

  fail(msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg);
  }

  get maxCommitted(): number {
    let m = 0;
    for (const i of this.committed.keys()) if (i > m) m = i;
    return m;
  }
}
