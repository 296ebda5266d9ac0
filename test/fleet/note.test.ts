import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  parseVerifierKey,
  parseSignerKey,
  signNote,
  openNote,
  parseNote,
  noteKeyId,
  formatVerifierKey,
  signCheckpoint,
  verifyCheckpoint,
  parseCheckpointBody,
  noteSignerFromSeed,
} from '../../src/client/fleet/index.js';
import { BkvError } from '../../src/shared/errors.js';

// The example key pair and signed note published in the documentation of golang.org/x/mod/sumdb/note.
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE =
  GO_TEXT + '\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

describe('signed notes match golang.org/x/mod/sumdb/note', () => {
  it('key ID, verifier key and signature match the package documentation example byte for byte', () => {
    const v = parseVerifierKey(GO_VKEY);
    expect(v.name).toBe('PeterNeumann');
    expect(v.keyId).toBe(0xc74f20a3);
    expect(noteKeyId(v.name, v.publicKey)).toBe(0xc74f20a3);
    expect(formatVerifierKey(v.name, v.publicKey)).toBe(GO_VKEY);
    const signer = parseSignerKey(GO_SKEY);
    expect(signer.publicKey).toEqual(v.publicKey);
    expect(signNote(GO_TEXT, [signer])).toBe(GO_NOTE);
    expect(openNote(GO_NOTE, v).text).toBe(GO_TEXT);
  });

  it('refuses a forged signature and a wrong key', () => {
    const v = parseVerifierKey(GO_VKEY);
    const forged = GO_NOTE.replace('x08go/ZJ', 'x08go/ZK');
    expect(() => openNote(forged, v)).toThrow(/invalid/);
    const other = noteSignerFromSeed('PeterNeumann', new Uint8Array(32).fill(9));
    expect(() => openNote(GO_NOTE, other)).toThrow(/not signed/);
  });

  it.each([
    ['no blank line', GO_TEXT + '— PeterNeumann AAAA\n'],
    ['control character', GO_NOTE.replace('If', 'I\u0007f')],
    ['bad base64', GO_NOTE.replace('x08go/', 'x08go*')],
    ['non-canonical base64', GO_TEXT + '\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAN=\n'],
    ['short signature', GO_TEXT + '\n— PeterNeumann AQID\n'],
    ['missing final newline', GO_NOTE.slice(0, -1)],
    ['no em dash', GO_NOTE.replace('— ', '- ')],
    ['name with plus', GO_NOTE.replace('— PeterNeumann', '— Peter+Neumann')],
    ['too many signatures', GO_NOTE + '— PeterNeumann AAAAAAA=\n'.repeat(100)],
  ])('rejects a malformed note: %s', (_name, note) => {
    expect(() => parseNote(note)).toThrow(BkvError);
    try {
      parseNote(note);
    } catch (e) {
      expect((e as BkvError).code).toBe('MALFORMED');
    }
  });

  it('fuzz: arbitrary notes and mutations never crash, they raise a typed error', () => {
    const v = parseVerifierKey(GO_VKEY);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.nat(GO_NOTE.length), fc.string({ maxLength: 5 }), (s, at, ins) => {
        for (const n of [s, GO_NOTE.slice(0, at) + ins + GO_NOTE.slice(at)]) {
          try {
            openNote(n, v);
          } catch (e) {
            expect(e).toBeInstanceOf(BkvError);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('checkpoints', () => {
  const signer = noteSignerFromSeed('witness.example/log', new Uint8Array(32).fill(1));
  const cp = { origin: 'witness.example/log', size: 12, rootHash: new Uint8Array(32).fill(7), extensions: [] };

  it('round-trips and requires key name = origin', () => {
    const note = signCheckpoint(cp, signer);
    expect(note.startsWith('witness.example/log\n12\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n— witness.example/log ')).toBe(true);
    const got = verifyCheckpoint(note, signer);
    expect(got.size).toBe(12);
    const wrongName = noteSignerFromSeed('other', new Uint8Array(32).fill(1));
    expect(() => signCheckpoint(cp, wrongName)).toThrow();
  });

  it.each([
    ['leading zero size', 'o\n012\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n'],
    ['negative size', 'o\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n'],
    ['short root', 'o\n1\nBwcH\n'],
    ['empty extension', 'o\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n'],
    ['missing root', 'o\n1\n'],
    ['huge size', 'o\n99999999999999999\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n'],
  ])('rejects a malformed checkpoint body: %s', (_n, body) => {
    expect(() => parseCheckpointBody(body)).toThrow(BkvError);
  });
});
