/**
 * The record tree: a compacted binary sparse Merkle tree over 32-byte record ids, whose root the
 * vault core keeps while the records live in the host's untrusted store (docs/formats/record-tree.md).
 * Browser-safe, pure functions over bytes.
 */
export {
  HASH_SIZE,
  KEY_SIZE,
  MAX_DEPTH,
  emptyHash,
  isZeroHash,
  valueHash,
  leafHash,
  nodeHash,
  keyBit,
  commonPrefixBits,
  compareKeys,
  bytesEqual,
  useRecordTreeSha256,
} from './hash.js';
export {
  PROOF_VERSION,
  type Proof,
  type ProofInput,
  type Terminal,
  encodeProof,
  decodeProof,
  terminalHash,
  verifyProof,
  verifyRecord,
} from './proof.js';
export {
  type TreeChild,
  type TreeNode,
  type NodeReader,
  type ChangedNode,
  type UpdateResult,
  type KeyedProof,
  type KeyedValueHash,
  EMPTY_CHILD,
  childHash,
  treeNodeHash,
  rootChild,
  positionId,
  prove,
  TreeUpdater,
  partialTree,
  applyUpdates,
} from './tree.js';
export { RootBuilder, type NodeSink } from './root-builder.js';
export {
  type KeyBlock,
  type DeleteResult,
  alignedKeyBlocks,
  checkBlocks,
  deleteBlocks,
  lastKeyOf,
  missingPosition,
} from './delete.js';
