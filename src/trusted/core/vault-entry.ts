/**
 * The vault core as one unit: everything a vault member loads into its trusted boundary (the HSM
 * or enclave). `npm run build:vault` bundles this entry, with every library it imports, into
 * `build/vault-core.js`; the SHA-256 of that file is the fleet's code measurement
 * (docs/attestation.md). Nothing here does I/O: the host injects clock, randomness and storage.
 */
export * from './codec.js';
export * from './counter-sign.js';
export * from './entries.js';
export * from './env.js';
export * from './fleet-secrets.js';
export type * from './replication.js';
export * from './sealing.js';
export * from './vault-core.js';
export * from '../records/batch.js';
export * from '../records/batcher.js';
export * from '../records/commands.js';
export * from '../records/record.js';
export * from '../records/record-keys.js';
export * from '../records/record-state.js';
export * as consensus from '../consensus/index.js';
export * as protocol from '../../shared/protocol/messages.js';
export * as channel from '../../shared/protocol/channel.js';
export * as keyWrap from '../../shared/protocol/key-wrap.js';
export * from '../attestation/member-core.js';
export { GroupKeys } from '../groups/messages.js';
export { TransferCoordinator } from '../groups/transfer.js';
export * from '../member.js';
