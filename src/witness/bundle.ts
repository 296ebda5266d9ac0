/**
 * Server-side helper: assembles a validation bundle from a witness (in-process or over HTTP).
 * The vault gateway calls this and returns the result in its fleet-information response.
 */
import { BkvError } from '../shared/errors.js';
import { VALIDATION_BUNDLE_FORMAT, type ValidationBundle } from '../client/fleet/bundle.js';
import { parseCheckpointBody } from '../client/fleet/checkpoint.js';
import { encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { parseNote } from '../shared/fleet-formats/note.js';
import type { WitnessReader } from './reader.js';

export interface BuildBundleOptions {
  /** Epoch to serve; default: the newest epoch that has a fleet counter-signature. */
  epoch?: number;
  /** The client's newest known tree size (BundleRequest.knownTreeSize): adds a consistency proof. */
  knownTreeSize?: number;
}

export async function buildValidationBundle(
  witness: WitnessReader,
  namespace: string,
  opts: BuildBundleOptions = {},
): Promise<ValidationBundle> {
  let epoch = opts.epoch;
  let record;
  if (epoch === undefined) {
    for (let e = await witness.latestEpoch(namespace); e >= 1; e--) {
      const r = await witness.epochRecord(namespace, e);
      if (r.counterSignature) {
        epoch = e;
        record = r;
        break;
      }
    }
    if (epoch === undefined) throw new BkvError('UNAVAILABLE', `namespace "${namespace}" has no counter-signed epoch yet`);
  }
  record ??= await witness.epochRecord(namespace, epoch);
  if (!record.counterSignature) {
    throw new BkvError('UNAVAILABLE', `epoch ${epoch} of "${namespace}" is not counter-signed by the fleet yet`);
  }
  const artifact = await witness.artifact(namespace, epoch);
  const note = await witness.checkpoint();
  const cp = parseCheckpointBody(parseNote(note).text);
  const proof = await witness.inclusionProof(record.leafIndex, cp.size);
  const bundle: ValidationBundle = {
    format: VALIDATION_BUNDLE_FORMAT,
    namespace,
    epoch,
    artifact: encodeBase64(artifact),
    digest: record.digest,
    statement: record.statement,
    witnessSignature: record.witnessSignature,
    counterSignature: record.counterSignature,
    checkpoint: note,
    leafIndex: record.leafIndex,
    inclusionProof: proof.map(encodeBase64),
  };
  const known = opts.knownTreeSize ?? 0;
  if (known > 0 && known !== cp.size && known <= cp.size) {
    const p = await witness.consistencyProof(known, cp.size);
    bundle.consistency = { size1: known, size2: cp.size, proof: p.map(encodeBase64) };
  }
  return bundle;
}
