import { BkvError } from '../../shared/errors.js';

/**
 * The strict binary codec of everything inside the trusted core (log entries, snapshots, consensus
 * messages, sealed member state): big-endian integers, 64-bit values limited to the safe-integer
 * range, and length-prefixed byte strings. Decoding never reads past the end and rejects trailing
 * bytes; each caller chooses the error it raises (`BkvError` MALFORMED by default).
 */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.view.setUint8(this.len, v);
    this.len += 1;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    this.reserve(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  /** An unsigned integer up to 2^53 - 1, as 8 bytes. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.reserve(8);
    this.view.setUint32(this.len, Math.floor(v / 2 ** 32));
    this.view.setUint32(this.len + 4, v >>> 0);
    this.len += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  string(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export class Reader {
  private pos = 0;
  private readonly view: DataView;
  private readonly fail: (message: string) => Error;

  /** `fail` makes the error for a malformed input; by default `BkvError('MALFORMED')`. */
  constructor(
    private readonly buf: Uint8Array,
    private readonly what = 'message',
    fail?: (message: string) => Error,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.fail = fail ?? ((message) => new BkvError('MALFORMED', message));
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw this.fail(`${this.what} is truncated (needs ${n} more bytes at offset ${this.pos})`);
    }
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    const v = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(v)) throw this.fail(`${this.what} has an integer out of range`);
    return v;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw this.fail(`${this.what} has an invalid boolean`);
    return v === 1;
  }

  /** Reads a count of following items, rejecting counts the remaining input cannot hold. */
  count(minItemBytes: number): number {
    const n = this.u32();
    if (n * minItemBytes > this.buf.length - this.pos) throw this.fail(`${this.what} has a count that exceeds its input`);
    return n;
  }

  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes(max = 1 << 24): Uint8Array {
    const n = this.u32();
    if (n > max) throw this.fail(`${this.what} has a field of ${n} bytes (limit ${max})`);
    return this.raw(n);
  }

  string(max = 4096): string {
    const b = this.bytes(max);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw this.fail(`${this.what} has a string that is not UTF-8`);
    }
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw this.fail(`${this.what} has ${this.buf.length - this.pos} unexpected trailing bytes`);
    }
  }
}
