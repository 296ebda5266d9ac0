/** Fleet-key validation: artifacts, witness statements, signed notes, bundles. Browser-safe. */
export * from './artifact.js';
export * from './bundle.js';
export * from './checkpoint.js';
export * from './consistency.js';
export * from './cosignature.js';
export * from './countersign.js';
export * from './note.js';
export * from './policy.js';
export * from './resolve.js';
export * from './statement.js';
export * from './store.js';
export {
  decodeBase64,
  encodeBase64,
  decodeHex,
  encodeHex,
  checkNamespace,
} from './encoding.js';
