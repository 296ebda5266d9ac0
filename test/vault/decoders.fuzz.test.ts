import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BkvError } from '../../src/shared/errors.js';
import { decodeEntry, encodeEntry } from '../../src/trusted/core/entries.js';
import { decodeFleetSecrets } from '../../src/trusted/core/fleet-secrets.js';
import { RecordState, decodeAppliedOutcome } from '../../src/trusted/records/record-state.js';
import { decodeBatch } from '../../src/trusted/records/batch.js';
import { decodeRecord } from '../../src/trusted/records/record.js';
import { openResponse, sealRequest, unpad } from '../../src/shared/protocol/channel.js';
import { decodeRequest, decodeResponse, encodeRequest } from '../../src/shared/protocol/messages.js';
import { makeFixture } from './fixture.js';

/** Runs `fn`; it may succeed or throw a BkvError, but nothing else (no crash, no TypeError). */
function onlyTypedErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof BkvError)) throw e;
  }
}

const bytes = fc.uint8Array({ maxLength: 600 });
const json = fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v)));
const nearRequest = fc
  .record({
    v: fc.oneof(fc.constant(1), fc.integer()),
    op: fc.constantFrom('register-start', 'register-finish', 'recover-start', 'recover-finish', 'x'),
    user: fc.oneof(fc.string(), fc.integer()),
    registrationRequest: fc.oneof(fc.base64String(), fc.string()),
    limit: fc.oneof(fc.integer(), fc.double()),
    ksf: fc.oneof(fc.constant(null), fc.record({ memory: fc.integer(), iterations: fc.integer(), parallelism: fc.integer() })),
    finishLoginRequest: fc.oneof(fc.constant(null), fc.string()),
    erase: fc.oneof(fc.boolean(), fc.integer()),
  }, { requiredKeys: [] })
  .map((o) => new TextEncoder().encode(JSON.stringify(o)));

describe('every decoder rejects hostile input with a typed error', () => {
  it('request and reply decoders', () => {
    fc.assert(
      fc.property(fc.oneof(bytes, json, nearRequest), (b) => {
        onlyTypedErrors(() => decodeRequest(b));
        onlyTypedErrors(() => decodeResponse(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('log entries, batches, batch outcomes, records, snapshots, padding, secrets', () => {
    const sm = new RecordState();
    fc.assert(
      fc.property(bytes, (b) => {
        onlyTypedErrors(() => decodeEntry(b));
        onlyTypedErrors(() => decodeAppliedOutcome(b));
        onlyTypedErrors(() => decodeBatch(b));
        onlyTypedErrors(() => decodeRecord(b));
        onlyTypedErrors(() => sm.restore(b));
        // Applying garbage as a committed entry changes nothing.
        sm.apply(1, b);
        expect(sm.lastBatchIndex).toBe(0);
        onlyTypedErrors(() => unpad(b));
        onlyTypedErrors(() => openResponse(new Uint8Array(32), b));
        try {
          decodeFleetSecrets(b);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a valid entry with any single byte changed never decodes into a crash', () => {
    const entry = encodeEntry({ type: 'attempt', ts: 1, user: 'someone', attemptId: new Uint8Array(16) });
    fc.assert(
      fc.property(fc.nat(entry.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = entry.slice();
        b[i]! ^= x;
        onlyTypedErrors(() => decodeEntry(b));
      }),
    );
  });

  it('the core answers arbitrary envelopes with a typed error and changes nothing', async () => {
    const fx = await makeFixture();
    try {
      const valid = encodeRequest({ op: 'register-start', user: 'a', registrationRequest: 'AAAA' });
      await fc.assert(
        fc.asyncProperty(fc.oneof(bytes, fc.constant(valid)), async (b) => {
          await fx.member.core.handle('a', b).then(
            () => undefined,
            (e) => expect(e).toBeInstanceOf(BkvError),
          );
        }),
        { numRuns: 300 },
      );
      expect(fx.member.state.lastBatchIndex).toBe(0);
      // Well-encrypted but hostile inner requests get a sealed, typed error reply.
      const pub = fx.member.core.publicKeys().encryptionPublicKey;
      await fc.assert(
        fc.asyncProperty(fc.oneof(bytes, nearRequest), async (inner) => {
          const { envelope, responseKey } = await sealRequest(pub, 'a', inner);
          const reply = decodeResponse(openResponse(responseKey, await fx.member.core.handle('a', envelope)));
          if (reply.ok) expect(reply.op).toBe('register-start');
          else expect(typeof reply.error.code).toBe('string');
        }),
        { numRuns: 200 },
      );
      expect(fx.member.state.lastBatchIndex).toBe(0);
    } finally {
      await fx.close();
    }
  });
});
