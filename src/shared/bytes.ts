/**
 * Byte-array helpers shared by the vault core, clients, witness and host. The one definition of
 * byte equality in the code base: `equalBytes` takes time that depends only on the lengths, never
 * on where the arrays differ, so it is safe for MACs, digests and keys alike.
 */

/** Constant-time equality (for equal lengths; different lengths return false at once). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Concatenates `parts` into one new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
