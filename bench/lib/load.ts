/**
 * Shared pieces of the vault and fleet benchmarks: command-line numbers, a bounded pool of
 * concurrent operations with latency percentiles, and the bare OPAQUE server rates that the
 * benchmarks compare against in the same run.
 */
import * as opaque from '@serenity-kit/opaque';

/** `--name N` from the command line, or `dflt`. */
export function numberArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

/** The smallest Argon2id, for load generators: the server, not the client, is measured. */
export const LIGHT_KSF = { memory: 8, iterations: 1, parallelism: 1 };

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Runs `op(0..total-1)` with `concurrency` in flight; returns ops/s and p50/p99 latency (ms). */
export async function runPool(total: number, concurrency: number, op: (i: number) => Promise<void>) {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = performance.now();
        await op(i);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { rate: total / secs, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

/** CPU milliseconds (user + system) this process has used so far. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The bare @serenity-kit/opaque server rates on one core: `createRegistrationResponse` per
 * registration, and `startLogin` + `finishLogin` per recovery (client messages prepared outside
 * the timing), each for `seconds`; with the CPU milliseconds each call costs (`regCpuMs`,
 * `recCpuMs`: process CPU time, which a busy machine does not inflate as it does wall time).
 */
export async function bareOpaqueRates(seconds: number): Promise<{ regRate: number; recRate: number; regCpuMs: number; recCpuMs: number }> {
  await opaque.ready;
  const ksf = { 'argon2id-custom': LIGHT_KSF };
  const setup = opaque.server.createSetup();
  const start = opaque.client.startRegistration({ password: 'pw' });
  const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup: setup, userIdentifier: 'u', registrationRequest: start.registrationRequest });
  const reg = opaque.client.finishRegistration({ clientRegistrationState: start.clientRegistrationState, registrationResponse, password: 'pw', keyStretching: ksf });
  let n = 0;
  let c0 = cpuMs();
  let t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    opaque.server.createRegistrationResponse({ serverSetup: setup, userIdentifier: `u${n}`, registrationRequest: start.registrationRequest });
    n++;
  }
  const regRate = n / ((performance.now() - t0) / 1000);
  const regCpuMs = (cpuMs() - c0) / n;
  const prepared = Array.from({ length: 200 }, () => {
    const c = opaque.client.startLogin({ password: 'pw' });
    const s = opaque.server.startLogin({ serverSetup: setup, registrationRecord: reg.registrationRecord, startLoginRequest: c.startLoginRequest, userIdentifier: 'u' });
    const f = opaque.client.finishLogin({ clientLoginState: c.clientLoginState, loginResponse: s.loginResponse, password: 'pw', keyStretching: ksf })!;
    return { ke1: c.startLoginRequest, ke3: f.finishLoginRequest, state: s.serverLoginState };
  });
  n = 0;
  c0 = cpuMs();
  t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const p = prepared[n % prepared.length]!;
    opaque.server.startLogin({ serverSetup: setup, registrationRecord: reg.registrationRecord, startLoginRequest: p.ke1, userIdentifier: 'u' });
    opaque.server.finishLogin({ serverLoginState: p.state, finishLoginRequest: p.ke3 });
    n++;
  }
  const recRate = n / ((performance.now() - t0) / 1000);
  return { regRate, recRate, regCpuMs, recCpuMs: (cpuMs() - c0) / n };
}
