/**
 * The consensus message and sealed-state formats use the core's strict binary codec
 * (`src/trusted/core/codec.ts`); any structural problem raises `ConsensusDecodeError`, never an unchecked
 * exception.
 */
import { Reader as CoreReader } from '../core/codec.js';

export class ConsensusDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConsensusDecodeError';
  }
}

/** Upper bound for any single length-prefixed field (entries, snapshots). */
export const MAX_FIELD_BYTES = 16 * 1024 * 1024;

export { Writer } from '../core/codec.js';

/** The core's reader, raising `ConsensusDecodeError` so malformed peer input is dropped, not fatal. */
export class Reader extends CoreReader {
  constructor(buf: Uint8Array) {
    super(buf, 'consensus input', (message) => new ConsensusDecodeError(message));
  }

  override bytes(max = MAX_FIELD_BYTES): Uint8Array {
    return super.bytes(max);
  }
}
