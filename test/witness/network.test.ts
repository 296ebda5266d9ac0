import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CosignatureQuorumError,
  MemoryCheckpointStore,
  checkCosignatures,
  formatWitnessPolicy,
  parseCosignerVerifierKey,
  parseVerifierKey,
  parseWitnessPolicy,
  resolveFleetKeys,
  verifyCheckpoint,
} from '../../src/client/fleet/index.js';
import { WitnessClient, WitnessLog, makeDemoFleet, publishEpoch, startWitness, type RunningWitness, type CosignerStatus } from '../../src/witness/index.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { cleanup, forkIdentity, newOperator, tempDir } from './fixtures.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bkvSrc = join(root, 'test', 'witness', 'bkv-from-source.ts');
const NS = 'acme.backups';

interface Proc {
  child: ChildProcess;
  url: string;
  cosignerVerifierKey: string;
}

/** `bkv witness start --cosign-log <key>` as its own process on 127.0.0.1. */
async function startCosignerProcess(dir: string, logKey: string, port = 0): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', bkvSrc, 'witness', 'start', '--dir', dir, '--port', String(port), '--cosign-log', logKey, '--json'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = await new Promise<{ url: string; cosignerVerifierKey: string }>((res, rej) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => rej(new Error(`witness process did not start: ${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        clearTimeout(timer);
        res(JSON.parse(buf.split('\n')[0]!));
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (c) => {
      clearTimeout(timer);
      rej(new Error(`witness exited ${c}: ${err}`));
    });
  });
  return { child, ...started };
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null) return;
  await new Promise<void>((res) => {
    p.child.once('exit', () => res());
    p.child.kill('SIGTERM');
  });
}

let logDir: string;
let logKey: string;
const dirs: string[] = [];
const procs: (Proc | undefined)[] = [];
let log: RunningWitness | undefined;
let forked: WitnessLog | undefined;
let policy2of3: string;
let policy3of3: string;
const operator = newOperator();
const errors: CosignerStatus[] = [];

beforeAll(async () => {
  // The fleet-key log's identity first: the cosigners are told its verifier key.
  logDir = await tempDir();
  const probe = await WitnessLog.open(logDir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  logKey = probe.keyInfo().verifierKey;
  await probe.close();
  for (let i = 0; i < 3; i++) dirs.push(await tempDir());
  procs.push(...(await Promise.all(dirs.map((d) => startCosignerProcess(d, logKey)))));
  const witnesses = procs.map((p, i) => ({ label: `w${i + 1}`, verifierKey: p!.cosignerVerifierKey, url: p!.url }));
  policy2of3 = formatWitnessPolicy({ logs: [logKey], witnesses, quorum: 2 });
  policy3of3 = formatWitnessPolicy({ logs: [logKey], witnesses, quorum: 3 });
  // the CLI writes the same policy from the witnesses' /v1/key
  const cliPolicy = await run(process.execPath, ['--import', 'tsx', bkvSrc, 'witness', 'policy', '--quorum', '2', ...procs.flatMap((p) => ['--cosigner', p!.url])], { cwd: root });
  expect(parseWitnessPolicy(cliPolicy.stdout).witnesses.map((w) => w.verifierKey)).toEqual(witnesses.map((w) => w.verifierKey));
  expect(parseWitnessPolicy(cliPolicy.stdout).quorum).toBe(2);
}, 90_000);

afterAll(async () => {
  await log?.close();
  await forked?.close();
  await Promise.all(procs.map(stop));
  await cleanup();
});

const fetchBundleFrom = (url: string) => async () => (await new WitnessClient(url).bundle(NS)) as never;

describe('a witness network: three cosigner processes, 2 of 3', () => {
  let original2: string; // the honest checkpoint of size 2
  let original1: string;

  it('w3 offline: the log gathers two honest cosignatures; quorum 2 of 3 met, 3 of 3 not met', async () => {
    const w3 = procs[2]!;
    await stop(w3); // offline
    log = await startWitness(logDir, {
      addCosigners: procs.map((p) => ({ url: p!.url, verifierKey: p!.cosignerVerifierKey })),
      cosignTimeoutMs: 3000,
      onCosignerError: (s) => errors.push(s),
    });
    const c = new WitnessClient(log.url);
    const f1 = makeDemoFleet(NS, 'fleet-1');
    await publishEpoch(c, { namespace: NS, artifact: f1.bytes, operator, counterSign: f1.counterSign });
    original1 = await c.checkpoint();
    const f2 = makeDemoFleet(NS, 'fleet-2');
    await publishEpoch(c, { namespace: NS, artifact: f2.bytes, operator, counterSign: f2.counterSign });
    original2 = await c.checkpoint();
    expect(verifyCheckpoint(original2, parseVerifierKey(logKey)).size).toBe(2);
    const cos = procs.map((p) => parseCosignerVerifierKey(p!.cosignerVerifierKey));
    const r = checkCosignatures(original2, cos);
    expect(r.valid.map((v) => v.name).length).toBe(2);
    expect(r.missing.length).toBe(1);
    // the operator sees why w3 did not cosign
    const st = ((await (await fetch(`${log.url}/v1/cosigners`)).json()) as { cosigners: CosignerStatus[] }).cosigners;
    expect(st[2]!.lastError).toMatch(/unreachable/);
    expect(st[0]!.cosignedSize).toBe(2);

    // a client pinning only the log key and the 2-of-3 policy accepts the fleet keys
    const keys = await resolveFleetKeys(
      { mode: 'over-the-air', namespace: NS, witnesses: [logKey], store: new MemoryCheckpointStore(), witnessPolicy: policy2of3 },
      fetchBundleFrom(log.url),
    );
    expect(keys.epoch).toBe(2);
    // 3 of 3: refused, naming w3 as missing
    const err = await resolveFleetKeys(
      { mode: 'over-the-air', namespace: NS, witnesses: [logKey], store: new MemoryCheckpointStore(), witnessPolicy: policy3of3 },
      fetchBundleFrom(log.url),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CosignatureQuorumError);
    expect((err as CosignatureQuorumError).missingCosigners).toEqual(['w3']);
    expect((err as CosignatureQuorumError).validCosigners).toEqual(['w1', 'w2']);
  });

  it('attack: the operator forks the log; honest cosigners refuse (422, the operator learns why), the partitioned w3 cosigns; clients refuse the fork', async () => {
    // w3 comes back but never saw the honest view: it is the one witness the forking operator can still fool
    procs[2] = await startCosignerProcess(dirs[2]!, logKey, Number(new URL(procs[2]!.url).port));
    await log!.close(); // the honest log stops gathering (so w3 does not see the honest view first)
    log = undefined;
    const forkDir = await forkIdentity(logDir);
    const forkErrors: CosignerStatus[] = [];
    forked = await WitnessLog.open(forkDir, {
      addOperatorKeys: [encodeBase64(operator.publicKey)],
      addCosigners: procs.map((p) => ({ url: p!.url, verifierKey: p!.cosignerVerifierKey })),
      onCosignerError: (s) => forkErrors.push(s),
    });
    // the same log key signs another history: epochs 1 and 2 with other fleets
    for (const [e, id] of [[1, 'evil-1'], [2, 'evil-2']] as const) {
      const f = makeDemoFleet(NS, id);
      const { submission } = await import('./fixtures.js');
      const rec = await forked.submit(NS, submission(NS, e, f.bytes, operator));
      const { counterSignatureMessage, decodeBase64 } = await import('../../src/client/fleet/index.js');
      await forked.addCounterSignature(NS, e, encodeBase64(f.counterSign(counterSignatureMessage(decodeBase64(rec.witnessSignature, 's', 64)))));
    }
    const forkNote = forked.checkpoint().note;
    expect(verifyCheckpoint(forkNote, parseVerifierKey(logKey)).size).toBe(2);
    // w1 and w2 refused with 422 and said why: they cosigned another tree of size 2
    const refusals = forkErrors.filter((s) => s.lastStatus === 422);
    expect([...new Set(refusals.map((s) => s.name))].sort()).toEqual(
      [procs[0], procs[1]].map((p) => parseCosignerVerifierKey(p!.cosignerVerifierKey).name).sort(),
    );
    expect(refusals.some((s) => /split view/.test(s.lastError ?? ''))).toBe(true);
    const cos = procs.map((p) => parseCosignerVerifierKey(p!.cosignerVerifierKey));
    const r = checkCosignatures(forkNote, cos);
    expect(r.valid.map((v) => v.name)).toEqual([cos[2]!.name]); // only w3

    // the client's 2-of-3 policy refuses the forked bundle and names the missing witnesses
    const { buildValidationBundle, localReader } = await import('../../src/witness/index.js');
    const err = await resolveFleetKeys(
      { mode: 'over-the-air', namespace: NS, witnesses: [logKey], store: new MemoryCheckpointStore(), witnessPolicy: parseWitnessPolicy(policy2of3) },
      () => buildValidationBundle(localReader(forked!), NS),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CosignatureQuorumError);
    const q = err as CosignatureQuorumError;
    expect(q.details.check).toBe('cosignatures');
    expect(q.validCosigners).toEqual(['w3']);
    expect(q.missingCosigners).toEqual(['w1', 'w2']);
    expect(q.message).toMatch(/1 valid cosignature\(s\), the witness policy needs 2 of 3/);

    // bkv audit checkpoints: the fork is reported with both checkpoints as evidence
    const d = await tempDir();
    await writeFile(join(d, 'honest.cp'), original2);
    await writeFile(join(d, 'fork.cp'), forkNote);
    await writeFile(join(d, 'honest1.cp'), original1);
    await writeFile(join(d, 'policy'), policy2of3);
    const audit = await run(process.execPath, ['--import', 'tsx', bkvSrc, 'audit', 'checkpoints', join(d, 'honest.cp'), join(d, 'fork.cp'), '--log-key', logKey, '--policy', join(d, 'policy')], { cwd: root }).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(audit.code).toBe(8);
    expect(audit.stdout).toMatch(/FORK DETECTED: the log signed two different trees of size 2/);
    expect(audit.stdout).toMatch(/cosigned by w1, w2 \(quorum 2 met\)/);
    expect(audit.stdout).toMatch(/cosigned by w3 \(quorum 2 NOT met\)/);
    for (const note of [original2, forkNote]) for (const line of note.trimEnd().split('\n').filter((l) => l)) expect(audit.stdout).toContain(line);
    // a consistent pair (the honest checkpoints of sizes 1 and 2, proof from the honest log)
    log = await startWitness(logDir, {});
    const ok = await run(process.execPath, ['--import', 'tsx', bkvSrc, 'audit', 'checkpoints', join(d, 'honest1.cp'), join(d, 'honest.cp'), '--log-key', logKey, '--witness', log.url, '--json'], { cwd: root });
    expect(JSON.parse(ok.stdout)).toMatchObject({ verdict: 'consistent' });
    // the fork's size-1 checkpoint against the honest size-2 one, with the honest log's proof: a fork
    const { compareCheckpoints } = await import('../../src/witness/fork.js');
    const c = new WitnessClient(log.url);
    const fork1 = (await forkedCheckpointAt1());
    const cmp = await compareCheckpoints(fork1, original2, { logKey: parseVerifierKey(logKey), consistencyProof: (a, b) => c.consistencyProof(a, b) });
    expect(cmp.verdict).toBe('fork');
  });
});

/** The forked log's checkpoint of size 1, re-signed from its own tree (the log key is the operator's). */
async function forkedCheckpointAt1(): Promise<string> {
  const { signCheckpoint } = await import('../../src/client/fleet/index.js');
  return signCheckpoint({ origin: forked!.config.origin, size: 1, rootHash: forked!.tree.root(1), extensions: [] }, forked!.signer);
}
