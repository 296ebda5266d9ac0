import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CoreEnv } from '../trusted/core/env.js';
import { decodeFleetSecrets, encodeFleetSecrets, generateFleetSecrets } from '../trusted/core/fleet-secrets.js';
import { SingleMemberLog } from '../trusted/core/single-member-log.js';
import { VaultStateMachine } from '../trusted/core/state-machine.js';
import { DEFAULT_POLICY, VaultCore, type VaultPolicy } from '../trusted/core/vault-core.js';
import { FileLogStorage, FileMonotonicCounter } from './file-log-storage.js';
import { nodeCoreEnv } from './fleet/native-crypto.js';
import { writeFileDurable } from '../node/fs-durable.js';

export interface VaultMember {
  core: VaultCore;
  state: VaultStateMachine;
  log: SingleMemberLog;
  close(): Promise<void>;
}

export interface VaultMemberOptions {
  env?: CoreEnv;
  policy?: VaultPolicy;
  snapshotEvery?: number;
}

/**
 * Opens (or creates) a single-member vault in `dir`. In the software backend, `member-secrets.bin`
 * stands in for the HSM's internal key store: a real module never writes its secrets outside.
 */
export async function openVaultMember(dir: string, opts: VaultMemberOptions = {}): Promise<VaultMember> {
  const env = opts.env ?? nodeCoreEnv;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const secretsPath = join(dir, 'member-secrets.bin');
  let secrets;
  if (existsSync(secretsPath)) {
    secrets = decodeFleetSecrets(new Uint8Array(await readFile(secretsPath)));
  } else {
    secrets = await generateFleetSecrets(env);
    await writeFileDurable(secretsPath, encodeFleetSecrets(secrets));
  }
  const storage = new FileLogStorage(dir);
  const counter = new FileMonotonicCounter(join(dir, 'counter.bin'));
  const state = new VaultStateMachine();
  const log = await SingleMemberLog.open(state, storage, counter, secrets.storageKey, env, {
    snapshotEvery: opts.snapshotEvery,
  });
  const core = await VaultCore.create(secrets, log, env, opts.policy ?? DEFAULT_POLICY);
  return {
    core,
    state,
    log,
    async close() {
      await log.readBarrier();
      await storage.close();
      await counter.close();
    },
  };
}
