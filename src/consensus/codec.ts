/**
 * Strict binary reader/writer used by the consensus message and sealed-state formats.
 * Big-endian integers; 64-bit values are limited to the safe-integer range. Any structural
 * problem raises `ConsensusDecodeError`, never an unchecked exception.
 */
export class ConsensusDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConsensusDecodeError';
  }
}

/** Upper bound for any single length-prefixed field (entries, snapshots). */
export const MAX_FIELD_BYTES = 16 * 1024 * 1024;

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.view.setUint8(this.len, v);
    this.len += 1;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    this.ensure(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.u32(Math.floor(v / 0x100000000));
    return this.u32(v >>> 0);
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.u32(b.length);
    return this.raw(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export class Reader {
  private off = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new ConsensusDecodeError('truncated input');
  }

  u8(): number {
    this.need(1);
    const v = this.view.getUint8(this.off);
    this.off += 1;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }

  u64(): number {
    const hi = this.u32();
    const lo = this.u32();
    if (hi > 0x1fffff) throw new ConsensusDecodeError('integer exceeds safe range');
    return hi * 0x100000000 + lo;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new ConsensusDecodeError('invalid boolean');
    return v === 1;
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }

  bytes(max = MAX_FIELD_BYTES): Uint8Array {
    const n = this.u32();
    if (n > max) throw new ConsensusDecodeError('field too long');
    return this.raw(n);
  }

  /** Reads a count of following items, rejecting counts the remaining input cannot hold. */
  count(minItemBytes: number): number {
    const n = this.u32();
    if (n * minItemBytes > this.buf.length - this.off) throw new ConsensusDecodeError('count exceeds input');
    return n;
  }

  end(): void {
    if (this.off !== this.buf.length) throw new ConsensusDecodeError('trailing bytes');
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}
