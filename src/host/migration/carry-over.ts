/**
 * Release-0.1 records as records of the record store, and the sealed pending-import file that
 * holds them between the offline part of a migration and the import's confirmation.
 *
 * Pending-import file: `u32 count ‖ nonce (12) ‖ AES-256-GCM(storage key, aad, body)` with
 * aad = sealingAad('bkv release-0.1 import v1', count) and body = count × (string account ‖ bytes
 * encoded record). Sealed with the fleet's storage key (`FleetSecrets.storageKey`), so the host
 * can neither read nor alter it, and every member of the fleet can open it.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../../trusted/core/codec.js';
import { SEAL_NONCE_BYTES, seal, sealingAad, unseal } from '../../trusted/core/sealing.js';
import { MAX_OPEN, RECENT_IDS, decodeRecord, encodeRecord, type VaultRecord } from '../../trusted/records/record.js';
import { writeFileDurable } from '../../node/fs-durable.js';
import type { VaultStateMachine } from './legacy-state-machine.js';

export interface CarriedRecord {
  account: string;
  record: VaultRecord;
}

/**
 * Every record of a release-0.1 state, sorted by account: live records keep their fields (open
 * attempts beyond the new format's limit are dropped, newest kept: an attempt that can no longer
 * finish costs its owner a retry, never a free guess); destroyed users become `destroyed`
 * tombstones so they stay locked. Erased records left nothing in 0.1 and leave nothing here.
 */
export function carryOver(sm: VaultStateMachine): CarriedRecord[] {
  const out: CarriedRecord[] = [];
  for (const [account, r] of sm.liveRecords()) {
    out.push({
      account,
      record: {
        status: 'live',
        version: r.version,
        opaqueRecord: r.opaqueRecord.slice(),
        wrappedKey: r.wrappedKey.slice(),
        ksf: { ...r.ksf },
        limit: r.limit,
        attemptsRemaining: r.attemptsRemaining,
        open: r.open.slice(-MAX_OPEN).map((a) => ({ id: a.id.slice(), ts: a.ts })),
        recent: r.recent.slice(-RECENT_IDS).map((id) => id.slice()),
      },
    });
  }
  for (const account of sm.destroyedUsers()) out.push({ account, record: { status: 'destroyed', version: 1 } });
  out.sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0));
  return out;
}

const PURPOSE = 'bkv release-0.1 import v1';

export function sealPending(storageKey: Uint8Array, records: CarriedRecord[], random: (n: number) => Uint8Array): Uint8Array {
  const w = new Writer(1024);
  for (const r of records) w.string(r.account).bytes(encodeRecord(r.record));
  const sealed = seal(storageKey, random(SEAL_NONCE_BYTES), sealingAad(PURPOSE, records.length), w.finish());
  return new Writer(sealed.length + 4).u32(records.length).raw(sealed).finish();
}

export function openPending(storageKey: Uint8Array, bytes: Uint8Array): CarriedRecord[] {
  if (bytes.length < 4) throw new BkvError('TAMPERED', 'the pending-import file is truncated');
  const count = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  const body = unseal(storageKey, sealingAad(PURPOSE, count), bytes.subarray(4), 'the pending-import file');
  const r = new Reader(body, 'pending import');
  const out: CarriedRecord[] = [];
  for (let i = 0; i < count; i++) out.push({ account: r.string(256), record: decodeRecord(r.bytes(4096)) });
  r.end();
  return out;
}

export async function writePending(path: string, storageKey: Uint8Array, records: CarriedRecord[], random: (n: number) => Uint8Array): Promise<void> {
  await writeFileDurable(path, sealPending(storageKey, records, random));
}

export async function readPending(path: string, storageKey: Uint8Array): Promise<CarriedRecord[] | null> {
  if (!existsSync(path)) return null;
  return openPending(storageKey, new Uint8Array(await readFile(path)));
}
