/**
 * Bulk loader: fills a single-member vault (`bkv vault start` layout: member-secrets.bin,
 * member-identity.bin, state/, records.sqlite) with N users, for the record-scale benchmark.
 *
 *   npm run load-records -- --dir D --users N [--store URL] [--real 100] [--json]
 *
 * Everything goes through the core's own code and the store's own checks:
 * - N − real synthetic users `synthetic-<i>`: record id `recordId` and value `sealRecord` under
 *   the vault's record keys (`deriveRecordKeys(secrets.storageKey)`). Their OPAQUE part is
 *   synthetic: one random 192-byte "registration record" and one random 60-byte wrapped key shared
 *   by all of them (nobody can recover them; they occupy the place and size of real users).
 * - Ids are generated first (32 bytes each, in this process only) and sorted; then each record is
 *   sealed once, its value hash added to the record tree's `RootBuilder` and the value written to
 *   a scratch file; then the values are streamed back in key order into `store.replace()`, which
 *   recomputes the root and refuses a mismatch. Memory: about 44 bytes per user in this process.
 * - The vault's consensus state is set to a sealed snapshot naming that root (log index 1, term
 *   1, `installRecordsSnapshot`), as if one batch had created those records.
 * - Then the vault is opened and `real` users `user<i>` (default 100) register through the vault
 *   core itself (`VaultClient` → `core.handle`), with password `password <i>`, secret
 *   `knownSecret(i)` and Argon2id at 8 KiB, 1 pass: the benchmark recovers them.
 * An existing directory keeps its secrets and identity; its records and state are replaced.
 * Writes `load.json` (users, store, seconds per phase) in the directory when done.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import * as opaque from '@serenity-kit/opaque';
import cliProgress from 'cli-progress';
import { sha256 } from '@noble/hashes/sha2.js';
import { compareKeys, RootBuilder, valueHash } from '../src/shared/record-tree/index.js';
import { deriveRecordKeys, recordId, sealRecord } from '../src/trusted/records/record-keys.js';
import type { VaultRecord } from '../src/trusted/records/record.js';
import { openRecordStore, type StoredRecord } from '../src/host/record-store/index.js';
import { openMemberFiles, openVaultMember } from '../src/host/vault-member.js';
import { installRecordsSnapshot, singleMemberKeys } from '../src/host/member-state-install.js';
import { nativeChannelPrimitives } from '../src/host/fleet/native-crypto.js';
import { VaultClient } from '../src/client/sdk/vault-client.js';

export const LOADER_KSF = { memory: 8, iterations: 1, parallelism: 1 };
/** The secret user `i` of a loaded vault registered (32 bytes). */
export const knownSecret = (i: number): Uint8Array => sha256(new TextEncoder().encode(`bkv load-records secret ${i}`));
export const knownAccount = (i: number): string => `user${i}`;
export const knownPassword = (i: number): string => `password ${i}`;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function bar(label: string, total: number, json: boolean) {
  if (json) return { update() {}, stop() {} };
  const b = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label.padEnd(6)} [{bar}] {percentage}% | {value}/{total} | {rate} records/s | {duration_formatted}`, hideCursor: true, fps: 2 },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  b.start(total, 0, { rate: '0' });
  return {
    update(n: number) {
      b.update(n, { rate: (n / ((performance.now() - t0) / 1000)).toFixed(0) });
    },
    stop() {
      b.stop();
    },
  };
}

async function main() {
  const dir = resolve(arg('dir') ?? '');
  const users = Number(arg('users'));
  const real = Number(arg('real') ?? 100);
  const json = process.argv.includes('--json');
  if (!arg('dir') || !Number.isSafeInteger(users) || users < 1 || !Number.isSafeInteger(real) || real < 0 || real > users || users >= 2 ** 32) {
    console.error('usage: load-records --dir D --users N [--store URL] [--real 100] [--json]  (real ≤ N < 2^32)');
    process.exit(2);
  }
  const storeUrl = arg('store') ?? `sqlite:${join(dir, 'records.sqlite')}`;
  const synthetic = users - real;
  const times: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    times[name] = (now - t) / 1000;
    t = now;
  };
  const t0 = t;

  const { secrets, seed } = await openMemberFiles(dir);
  const keys = deriveRecordKeys(secrets.storageKey);

  // 1. Record ids, then their order: a 64-bit word per id (first 4 bytes of the id, then its
  // number), sorted natively; ids with equal first 4 bytes are then put in full order.
  const ids = Buffer.allocUnsafe(synthetic * 32);
  let pb = bar('ids', synthetic, json);
  for (let i = 0; i < synthetic; i++) {
    ids.set(recordId(keys, `synthetic-${i}`), i * 32);
    if ((i & 4095) === 4095) pb.update(i + 1);
  }
  pb.update(synthetic);
  pb.stop();
  const order = new BigUint64Array(synthetic);
  for (let i = 0; i < synthetic; i++) order[i] = (BigInt(ids.readUInt32BE(i * 32)) << 32n) | BigInt(i);
  order.sort();
  const idx = new Uint32Array(synthetic);
  for (let i = 0; i < synthetic; i++) idx[i] = Number(order[i]! & 0xffffffffn);
  const idAt = (i: number) => ids.subarray(i * 32, i * 32 + 32);
  for (let s = 0; s < synthetic; ) {
    let e = s + 1;
    while (e < synthetic && order[e]! >> 32n === order[s]! >> 32n) e++;
    if (e - s > 1) idx.subarray(s, e).sort((a, b) => compareKeys(idAt(a), idAt(b)));
    s = e;
  }
  lap('ids');

  // 2. Seal each record once, in key order: its hash into the root, its value into a scratch file.
  const opaqueRecord = crypto.getRandomValues(new Uint8Array(192));
  const wrappedKey = crypto.getRandomValues(new Uint8Array(60));
  const record: VaultRecord = { status: 'live', version: 1, opaqueRecord, wrappedKey, ksf: LOADER_KSF, limit: 10, attemptsRemaining: 10, open: [], recent: [] };
  const scratch = await mkdtemp(join(tmpdir(), 'bkv-load-'));
  const valuesPath = join(scratch, 'values');
  const builder = new RootBuilder();
  let valueLen = 0;
  try {
    const out = createWriteStream(valuesPath);
    pb = bar('seal', synthetic, json);
    const nonces = new Uint8Array(12 * 4096);
    for (let i = 0; i < synthetic; i++) {
      if (i % 4096 === 0) crypto.getRandomValues(nonces);
      const id = idAt(idx[i]!);
      const value = sealRecord(keys, id, record, nonces.subarray((i % 4096) * 12, (i % 4096) * 12 + 12), nativeChannelPrimitives);
      if (valueLen === 0) valueLen = value.length;
      if (value.length !== valueLen) throw new Error('synthetic records differ in size');
      builder.add(id, valueHash(value));
      if (!out.write(value)) await once(out, 'drain');
      if ((i & 4095) === 4095) pb.update(i + 1);
    }
    pb.update(synthetic);
    pb.stop();
    out.end();
    await once(out, 'finish');
    const root = builder.finish();
    lap('seal');

    // 3. Stream them into the store, which recomputes the root and swaps the content in only if it matches.
    const store = await openRecordStore(storeUrl);
    pb = bar('store', synthetic, json);
    async function* pages(): AsyncIterable<StoredRecord[]> {
      const PAGE = 4096;
      let i = 0;
      let page: StoredRecord[] = [];
      let rest = Buffer.alloc(0);
      for await (const chunk of createReadStream(valuesPath, { highWaterMark: valueLen * PAGE })) {
        let buf = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
        let o = 0;
        for (; o + valueLen <= buf.length; o += valueLen) {
          page.push({ key: idAt(idx[i++]!), value: new Uint8Array(buf.subarray(o, o + valueLen)) });
          if (page.length === PAGE) {
            yield page;
            page = [];
          }
        }
        rest = Buffer.from(buf.subarray(o));
        buf = Buffer.alloc(0);
      }
      if (page.length) yield page;
      if (i !== synthetic) throw new Error(`scratch file holds ${i} records, expected ${synthetic}`);
    }
    try {
      await store.replace({ index: 1, root }, pages(), (n) => pb.update(n));
    } finally {
      pb.stop();
      await store.close();
    }
    lap('store');

    // 4. The vault's state: a sealed snapshot naming that root.
    const { storageKey } = singleMemberKeys(seed);
    await installRecordsSnapshot(join(dir, 'state'), 1, storageKey, { root, count: synthetic });
    lap('install');
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  // 5. The users whose passwords the benchmark knows: real registrations through the vault core.
  if (real > 0) {
    await opaque.ready;
    const member = await openVaultMember(dir, { store: storeUrl });
    try {
      const { opaqueServerPublicKey, encryptionPublicKey } = member.core.publicKeys();
      const fleet = { opaqueServerPublicKey, encryptionPublicKey };
      pb = bar('users', real, json);
      for (let i = 0; i < real; i++) {
        const account = knownAccount(i);
        const client = new VaultClient({ account, fleet, ksf: LOADER_KSF, channelPrimitives: nativeChannelPrimitives, transport: (env) => member.core.handle(account, env) });
        await client.registerKey(knownPassword(i), knownSecret(i));
        pb.update(i + 1);
      }
      pb.stop();
      if (member.state.count !== users) throw new Error(`the vault holds ${member.state.count} records, expected ${users}`);
    } finally {
      await member.close();
    }
    lap('register');
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary = { users, real, store: storeUrl.replace(/\/\/[^@/]*@/, '//'), seconds, phases: times, recordsPerSecond: users / seconds };
  await writeFile(join(dir, 'load.json'), JSON.stringify(summary, null, 2) + '\n');
  if (json) console.log(JSON.stringify(summary));
  else {
    console.log(`loaded ${users.toLocaleString('en')} users (${real} registered through the vault) into ${summary.store} in ${seconds.toFixed(1)} s (${summary.recordsPerSecond.toFixed(0)} records/s)`);
    console.log(`  phases (s): ${Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
