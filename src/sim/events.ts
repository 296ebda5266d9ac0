/** A discrete-event queue ordered by (time, insertion order): deterministic tie-breaking. */
interface Ev {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class EventQueue {
  private heap: Ev[] = [];
  private seq = 0;
  now = 0;

  schedule(delay: number, fn: () => void): { cancel(): void } {
    const ev: Ev = { at: this.now + Math.max(0, delay), seq: this.seq++, fn, cancelled: false };
    this.push(ev);
    return { cancel: () => { ev.cancelled = true; } };
  }

  get size(): number {
    return this.heap.length;
  }

  /** Runs the next event; returns false when the queue is empty. */
  runNext(): boolean {
    for (;;) {
      const ev = this.pop();
      if (!ev) return false;
      if (ev.cancelled) continue;
      this.now = ev.at;
      ev.fn();
      return true;
    }
  }

  peekTime(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  private less(x: Ev, y: Ev): boolean {
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private push(ev: Ev): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Ev, h[p] as Ev)) break;
      [h[i], h[p]] = [h[p] as Ev, h[i] as Ev];
      i = p;
    }
  }

  private pop(): Ev | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0] as Ev;
    const last = h.pop() as Ev;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l] as Ev, h[m] as Ev)) m = l;
        if (r < h.length && this.less(h[r] as Ev, h[m] as Ev)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Ev, h[i] as Ev];
        i = m;
      }
    }
    return top;
  }
}
