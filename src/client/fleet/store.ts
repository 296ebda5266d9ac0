/**
 * Where a client keeps what it has seen: the newest checkpoint per witness and the newest
 * accepted epoch per namespace. A tiny injected key-value interface so browsers can back it with
 * localStorage/IndexedDB and Node with a file (`FileCheckpointStore` in src/witness/).
 *
 * Keys used: "checkpoint:<witness origin>" → signed checkpoint note; "epoch:<namespace>" → decimal.
 */
export interface CheckpointStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

export class MemoryCheckpointStore implements CheckpointStore {
  private readonly map = new Map<string, string>();
  async get(key: string): Promise<string | undefined> {
    return this.map.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.map.set(key, value);
  }
}

export const checkpointKey = (origin: string): string => `checkpoint:${origin}`;
export const epochKey = (namespace: string): string => `epoch:${namespace}`;
