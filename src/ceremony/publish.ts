/**
 * Publishing a deployed fleet: the operator submits the artifact with its evidence to the witness,
 * the fleet (inside member 1's core) counter-signs the witness statement, the operator uploads it.
 */
import { decodeBase64 } from '../shared/fleet-formats/encoding.js';
import { WitnessClient } from '../witness/client.js';
import type { OperatorKey } from '../witness/keys.js';
import type { EpochRecord } from '../witness/protocol.js';
import type { CounterSignRequest } from '../trusted/core/counter-sign.js';

export interface PublishDeploymentOptions {
  witnessUrl: string;
  namespace: string;
  artifact: Uint8Array;
  evidence: Uint8Array;
  operator: OperatorKey;
  /** The fleet's counter-signing (inside a member core); omitted: only submit. */
  counterSign?: (req: CounterSignRequest, trustedWitnesses: readonly string[]) => Promise<Uint8Array>;
  /** The witness verifier key the fleet trusts; default: the key the witness reports. */
  witnessKey?: string;
}

export async function publishDeployment(o: PublishDeploymentOptions): Promise<EpochRecord> {
  const w = new WitnessClient(o.witnessUrl);
  const latest = await w.latestEpochOrZero(o.namespace);
  const rec = await w.submit(o.namespace, latest + 1, o.artifact, o.operator, o.evidence);
  if (!o.counterSign) return rec;
  const witnessKey = o.witnessKey ?? (await w.keyInfo()).verifierKey;
  const cs = await o.counterSign(
    {
      artifact: o.artifact,
      statement: decodeBase64(rec.statement, 'statement'),
      witnessSignature: decodeBase64(rec.witnessSignature, 'witnessSignature', 64),
    },
    [witnessKey],
  );
  return w.uploadCounterSignature(o.namespace, rec.epoch, cs);
}
