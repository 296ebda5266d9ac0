/**
 * Pulls exact-size pieces out of an AsyncIterable of byte arrays, whatever sizes the source yields.
 * Holds at most one requested piece plus one source buffer, so memory stays constant.
 * A piece is a view into a source buffer when it fits in one, otherwise a copy (into a reused
 * scratch buffer when the caller says the piece is dropped before its next read).
 */
export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private bufs: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  private scratch: Uint8Array | null = null;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      if (r.value.length > 0) {
        this.bufs.push(r.value);
        this.buffered += r.value.length;
      }
    }
  }

  /**
   * Reads n bytes; fewer (possibly none) only at the end of the input. With `transient`, a piece
   * that spans source buffers is assembled in a scratch buffer that the next transient read reuses,
   * so the caller must be done with it by then (saves a fresh allocation per chunk).
   */
  async read(n: number, transient = false): Promise<Uint8Array> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const first = this.bufs[0];
    if (!first || take === 0) return new Uint8Array(0);
    let out: Uint8Array;
    if (first.length >= take) {
      out = first.subarray(0, take);
      if (first.length === take) this.bufs.shift();
      else this.bufs[0] = first.subarray(take);
    } else {
      if (transient) {
        if (!this.scratch || this.scratch.length < take) this.scratch = new Uint8Array(take);
        out = this.scratch.subarray(0, take);
      } else {
        out = new Uint8Array(take);
      }
      let off = 0;
      while (off < take) {
        const b = this.bufs[0]!;
        const m = Math.min(b.length, take - off);
        out.set(b.subarray(0, m), off);
        off += m;
        if (m === b.length) this.bufs.shift();
        else this.bufs[0] = b.subarray(m);
      }
    }
    this.buffered -= take;
    return out;
  }

  /** True when no byte remains. */
  async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.buffered === 0;
  }

  /** Stops pulling from the source (closes files and the like). */
  async close(): Promise<void> {
    this.bufs = [];
    this.buffered = 0;
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}
