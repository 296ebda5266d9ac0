import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BkvError } from '../../src/shared/errors.js';
import { openMessage } from '../../src/trusted/groups/messages.js';
import { decodeControl } from '../../src/trusted/groups/state.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import { GROUP_KEYS } from './harness.js';

function onlyTypedErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof BkvError)) throw e;
  }
}

/** Random bytes, and random bytes behind a valid tag, version and kind (to get past the first checks). */
const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.tuple(fc.constantFrom(0x47, 0x54), fc.integer({ min: 1, max: 7 }), fc.uint8Array({ maxLength: 400 })).map(([t, k, b]) => new Uint8Array([t, 1, k, ...b])),
  // Version 2 done entries (with a drop): a reply and block proofs of random bytes behind them.
  fc.tuple(fc.integer({ min: 4, max: 6 }), fc.uint8Array({ maxLength: 400 })).map(([k, b]) => new Uint8Array([0x47, 2, k, ...b])),
  fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 300 })).map(([reply, n, rest]) => {
    const x = new Uint8Array(3 + 4 + reply.length + 1 + rest.length);
    x.set([0x47, 2, 5], 0);
    new DataView(x.buffer).setUint32(3, reply.length);
    x.set(reply, 7);
    x[7 + reply.length] = n;
    x.set(rest, 8 + reply.length);
    return x;
  }),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 57, maxLength: 400 })).map(([g, b]) => {
    const x = new Uint8Array([0x53, 2, ...b]);
    x.fill(0, 2, 10); // applied index 0 ≥ batch index (also 0) would need bytes 10..17 zero too
    x.fill(0, 10, 18);
    x[59] = g;
    x[60] = 3;
    return x;
  }),
);

describe('group decoders reject hostile input with typed errors and change nothing', () => {
  it('control entries, transfer messages and group snapshots', () => {
    const sm = new RecordState({ id: 1, groups: 3, keys: GROUP_KEYS });
    const state = sm.snapshot();
    fc.assert(
      fc.property(hostile, (b) => {
        onlyTypedErrors(() => decodeControl(b));
        onlyTypedErrors(() => openMessage(GROUP_KEYS, b, 1));
        onlyTypedErrors(() => sm.restore(b));
        sm.restore(state);
        // Applied as a committed entry, garbage changes nothing but the applied index.
        sm.apply(1, b);
        expect(sm.snapshot().subarray(10)).toEqual(state.subarray(10));
        sm.restore(state);
      }),
      { numRuns: 3000 },
    );
  });

  it('a snapshot whose group part does not decode leaves the group state as it was', () => {
    const sm = new RecordState({ id: 1, groups: 3, keys: GROUP_KEYS });
    const good = sm.snapshot();
    const bad = good.slice(0, good.length - 5);
    expect(() => sm.restore(bad)).toThrow(BkvError);
    expect(sm.snapshot()).toEqual(good);
  });
});
