/**
 * What a hostile or broken host does to a running member's record store, for both simulators:
 * roll it back to an older copy, swap two rows, delete a row, forge a value, tear a write of the
 * records, or tear a write of the tree (the tree and the meta move on to a batch that was never
 * committed). The core must notice each one against its committed root.
 */
import type { MemoryRecordStore, MemorySnapshot } from '../host/record-store/memory.js';
import type { Prng } from './prng.js';

/** Applies one fault to `store` among the record ids `ids`; returns its kind (0–5), or null when nothing was done. */
export function injectStoreFault(rng: Prng, store: MemoryRecordStore, backups: readonly MemorySnapshot[], ids: Uint8Array[]): number | null {
  const k1 = rng.pick(ids);
  const k2 = rng.pick(ids.filter((k) => k !== k1));
  const sub = rng.int(0, 5);
  try {
    if (sub === 0 && backups.length > 0) store.rollbackTo(rng.pick(backups));
    else if (sub === 1) store.swapValues(k1, k2);
    else if (sub === 2) store.deleteRow(k1);
    else if (sub === 3) store.forgeValue(k1, rng.bytes(rng.int(40, 200)));
    else if (sub === 4) store.tornApply(0, [{ key: k1, value: rng.bytes(80) }], 'records');
    else {
      const value = rng.bytes(80);
      void store.meta().then((meta) => store.tornApply(meta.index + 1, [{ key: k1, value }], 'tree'));
    }
    return sub;
  } catch {
    return null; // the rows were not there: nothing done
  }
}
