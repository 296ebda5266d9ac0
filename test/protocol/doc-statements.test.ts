/**
 * Statements of docs/formats/vault-channel.md that third parties implement from, checked against
 * the code: the default Argon2id parameters, the field ranges the core's decoder enforces, and the
 * reply shapes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/attestation/reproducible-build.js';
import { DEFAULT_CLIENT_KSF } from '../../src/client/sdk/vault-client.js';
import { decodeRequest, encodeResponse, KSF_LIMITS } from '../../src/shared/protocol/messages.js';
import { DEFAULT_KSF, DEFAULT_POLICY } from '../../src/trusted/core/vault-core.js';

const doc = readFileSync(join(projectRoot(), 'docs/formats/vault-channel.md'), 'utf8').replace(/\s+/g, ' ');
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const finish = (patch: Record<string, unknown>) =>
  enc({ v: 1, op: 'register-finish', user: 'a', registrationRecord: 'AA', wrappedKey: 'AA', ksf: { ...DEFAULT_CLIENT_KSF }, limit: 10, ...patch });

describe('docs/formats/vault-channel.md against the code', () => {
  it('states the default Argon2id parameters the SDK and the core use', () => {
    expect(DEFAULT_KSF).toEqual(DEFAULT_CLIENT_KSF);
    expect(doc).toContain(`Default of the SDK and of \`bkv\`: \`${JSON.stringify(DEFAULT_CLIENT_KSF)}\``);
  });

  it('states the ranges the decoder enforces for ksf and limit, and the default maximum', () => {
    expect(doc).toContain(`\`memory\` in **KiB**, ${KSF_LIMITS.memory[0]}–${KSF_LIMITS.memory[1]}; \`iterations\` ${KSF_LIMITS.iterations.join('–')}; \`parallelism\` ${KSF_LIMITS.parallelism.join('–')}`);
    expect(doc).toContain('an integer 1–1000');
    expect(doc).toContain(`--max-attempts N\`, default ${DEFAULT_POLICY.maxLimit}`);
    for (const limit of [1, 1000]) expect(decodeRequest(finish({ limit }))).toMatchObject({ limit });
    for (const limit of [0, 1001, 2.5, '10']) expect(() => decodeRequest(finish({ limit }))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    const [lo, hi] = KSF_LIMITS.memory;
    expect(() => decodeRequest(finish({ ksf: { ...DEFAULT_CLIENT_KSF, memory: lo - 1 } }))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    expect(() => decodeRequest(finish({ ksf: { ...DEFAULT_CLIENT_KSF, memory: hi + 1 } }))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    // padded or standard base64 is not base64url without padding
    for (const wrappedKey of ['AA==', 'A+/A']) expect(() => decodeRequest(finish({ wrappedKey }))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
  });

  it('states the reply shapes the core writes', () => {
    const ok = new TextDecoder().decode(encodeResponse({ ok: true, op: 'register-finish', version: 1, attemptsRemaining: 10 }));
    expect(ok).toBe('{"v":1,"ok":true,"op":"register-finish","version":1,"attemptsRemaining":10}');
    expect(doc).toContain(ok);
    const err = new TextDecoder().decode(encodeResponse({ ok: false, error: { code: 'USAGE', message: "attempt limit 500 exceeds this fleet's maximum of 100" } }));
    expect(doc).toContain(err);
  });
});
