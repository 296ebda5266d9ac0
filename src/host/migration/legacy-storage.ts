/**
 * What the core needs from the host's disk. Implementations are untrusted: everything passed in
 * is already sealed, and everything read back is authenticated by the core before use.
 */
export interface LogStorage {
  /** Appends sealed frames; resolves only once they are durable (fsync). */
  append(frames: Uint8Array[]): Promise<void>;
  /** Reads the latest snapshot (if any) and every frame appended after it. */
  load(): Promise<{ snapshot: Uint8Array | null; frames: Uint8Array[] }>;
  /** Durably replaces the snapshot and drops all frames (the snapshot covers them). */
  replaceWithSnapshot(snapshot: Uint8Array): Promise<void>;
}

/**
 * A counter that never goes backwards, even if the host restores an old disk image: NVRAM in a
 * hardware security module, a monotonic counter in a TEE. The software backend keeps it in a file,
 * which only models the interface (see docs/vault.md, "Rollback").
 */
export interface MonotonicCounter {
  read(): Promise<number>;
  /** Raises the counter to `value` (never lowers it); resolves once durable. */
  advanceTo(value: number): Promise<void>;
}
