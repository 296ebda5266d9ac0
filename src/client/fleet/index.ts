/** Fleet-key validation: artifacts, witness statements, signed notes, bundles. Browser-safe. */
export * from '../../shared/fleet-formats/artifact.js';
export * from './bundle.js';
export * from './checkpoint.js';
export * from './consistency.js';
export * from './cosignature.js';
export * from '../../shared/fleet-formats/countersign.js';
export * from '../../shared/fleet-formats/note.js';
export * from './policy.js';
export * from './resolve.js';
export * from '../../shared/fleet-formats/statement.js';
export * from './store.js';
export {
  decodeBase64,
  encodeBase64,
  decodeHex,
  encodeHex,
  checkNamespace,
} from '../../shared/fleet-formats/encoding.js';
