import { describe, expect, it } from 'vitest';
import { encodeRecoveryKey, decodeRecoveryKey, keyFingerprint } from '../../src/client/index.js';
import { nodeAesGcm } from '../../src/node/aes-gcm.js';
import { decrypt, encrypt } from './helpers.js';
import { encryptBackup } from '../../src/client/backup/encrypt.js';

// The worked example in docs/formats/backup.md and docs/formats/recovery-key.md, cross-checked
// against an independent HKDF/AES-GCM implementation when the format was written.
const key = Uint8Array.from({ length: 32 }, (_, i) => i);
const salt = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const HELLO =
  '424b564241434b0a0100000000001000843a09137b38732f5343ec5d93a14b9d404142434445464748494a4b4c4d4e4f' +
  '505152535455565758595a5b5c5d5e5fb268783cefd7ca9ab43a8cf6a82aa91a2bcf59c36e68a74e654723ac27';
const EMPTY =
  '424b564241434b0a0100000000001000843a09137b38732f5343ec5d93a14b9d404142434445464748494a4b4c4d4e4f' +
  '505152535455565758595a5b5c5d5e5f3cc24693a846ce1934e62aa0516f1fea';

async function sealed(text: string): Promise<string> {
  const parts: Uint8Array[] = [];
  async function* src() {
    if (text) yield new TextEncoder().encode(text);
  }
  for await (const p of encryptBackup(src(), { key, salt, chunkSize: 4096, cipher: nodeAesGcm })) parts.push(p);
  return Buffer.concat(parts).toString('hex');
}

describe('known answers', () => {
  it('backup format v1 worked examples', async () => {
    expect(await sealed('hello, backup')).toBe(HELLO);
    expect(await sealed('')).toBe(EMPTY);
    const out = await decrypt(Buffer.from(HELLO, 'hex'), key);
    expect(new TextDecoder().decode(out.data)).toBe('hello, backup');
    expect((await decrypt(await encrypt(new Uint8Array(0), key), key)).data.length).toBe(0);
  });

  it('fingerprint and recovery key of the example key', () => {
    expect(Buffer.from(keyFingerprint(key)).toString('hex')).toBe('843a09137b38732f5343ec5d93a14b9d');
    const text = '000G-40R4-0M30-E209-185G-R38E-1W81-24GK-2GAH-C5RR-34D1-P70X-3RFG-J4PS-SCD1-Y5JT';
    expect(encodeRecoveryKey(key)).toBe(text);
    expect(decodeRecoveryKey(text)).toEqual(key);
  });
});
