/**
 * HTTP client for the witness API (uses global fetch). Used by the CLI, the audit, the demo and
 * the gateway's bundle builder.
 */
import { BkvError, type ErrorCode } from '../shared/errors.js';
import { artifactDigest } from '../shared/fleet-formats/artifact.js';
import { counterSignatureMessage } from '../shared/fleet-formats/countersign.js';
import { decodeBase64, encodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import type { OperatorKey } from './keys.js';
import { submissionMessage, type EpochRecord, type WitnessKeyInfo } from './protocol.js';
import type { WitnessReader } from './reader.js';

const KNOWN: ErrorCode[] = ['USAGE', 'MALFORMED', 'UNAUTHORIZED', 'CONFLICT', 'VERIFICATION_FAILED', 'UNAVAILABLE', 'IO'];

export class WitnessClient implements WitnessReader {
  readonly baseUrl: string;
  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  private async request(path: string, init?: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, init);
    } catch (e) {
      throw new BkvError('NETWORK', `cannot reach the witness at ${this.baseUrl}: ${(e as Error).message}`);
    }
    if (!res.ok) {
      let code: ErrorCode = res.status >= 500 ? 'UNAVAILABLE' : 'USAGE';
      let message = `witness answered HTTP ${res.status} for ${path}`;
      let check: string | undefined;
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string; check?: string } };
        if (j.error?.code && (KNOWN as string[]).includes(j.error.code)) code = j.error.code as ErrorCode;
        if (j.error?.message) message = `witness: ${j.error.message}`;
        if (typeof j.error?.check === 'string') check = j.error.check;
      } catch {
        /* not JSON */
      }
      throw new BkvError(code, message, { status: res.status, ...(check ? { check } : {}) });
    }
    return res;
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await this.request(path, init);
    try {
      return (await res.json()) as T;
    } catch {
      throw new BkvError('MALFORMED', `witness sent invalid JSON for ${path}`);
    }
  }

  private static ns(ns: string): string {
    return encodeURIComponent(ns);
  }

  keyInfo(): Promise<WitnessKeyInfo> {
    return this.json('/v1/key');
  }
  async namespaces(): Promise<{ namespace: string; latestEpoch: number }[]> {
    return (await this.json<{ namespaces: { namespace: string; latestEpoch: number }[] }>('/v1/namespaces')).namespaces;
  }
  /** The newest epoch of `namespace`, or 0 when the witness has none yet. */
  async latestEpochOrZero(namespace: string): Promise<number> {
    try {
      return await this.latestEpoch(namespace);
    } catch (e) {
      if (e instanceof BkvError && e.details.status === 404) return 0;
      throw e;
    }
  }

  async latestEpoch(namespace: string): Promise<number> {
    return (await this.json<{ latestEpoch: number }>(`/v1/namespaces/${WitnessClient.ns(namespace)}`)).latestEpoch;
  }
  epochRecord(namespace: string, epoch: number): Promise<EpochRecord> {
    return this.json(`/v1/namespaces/${WitnessClient.ns(namespace)}/epochs/${epoch}`);
  }
  async artifact(namespace: string, epoch: number): Promise<Uint8Array> {
    const res = await this.request(`/v1/namespaces/${WitnessClient.ns(namespace)}/epochs/${epoch}/artifact`);
    return new Uint8Array(await res.arrayBuffer());
  }
  /** The deployment evidence logged with an epoch (exact bytes). */
  async evidence(namespace: string, epoch: number): Promise<Uint8Array> {
    const res = await this.request(`/v1/namespaces/${WitnessClient.ns(namespace)}/epochs/${epoch}/evidence`);
    return new Uint8Array(await res.arrayBuffer());
  }
  policy(): Promise<{ evidenceRequired: boolean; allowedVendors: string[]; allowedMeasurements: string[] }> {
    return this.json('/v1/policy');
  }
  async checkpoint(): Promise<string> {
    return (await this.request('/checkpoint')).text();
  }
  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    const r = await this.json<{ proof: string[] }>(`/v1/proof/inclusion?index=${index}&size=${size}`);
    return r.proof.map((p) => decodeBase64(p, 'proof hash', 32));
  }
  async consistencyProof(size1: number, size2: number): Promise<Uint8Array[]> {
    const r = await this.json<{ proof: string[] }>(`/v1/proof/consistency?size1=${size1}&size2=${size2}`);
    return r.proof.map((p) => decodeBase64(p, 'proof hash', 32));
  }
  /** The witness's own bundle endpoint (the gateway may proxy it or build bundles itself). */
  bundle(namespace: string, opts: { epoch?: number; knownTreeSize?: number } = {}): Promise<unknown> {
    const q = new URLSearchParams();
    if (opts.epoch !== undefined) q.set('epoch', String(opts.epoch));
    if (opts.knownTreeSize !== undefined) q.set('knownTreeSize', String(opts.knownTreeSize));
    const qs = q.toString();
    return this.json(`/v1/bundle/${WitnessClient.ns(namespace)}${qs ? '?' + qs : ''}`);
  }

  /** Operator: submit an artifact as the next epoch of `namespace`. */
  submit(namespace: string, epoch: number, artifact: Uint8Array, operator: OperatorKey, evidence?: Uint8Array): Promise<EpochRecord> {
    const digest = encodeHex(artifactDigest(artifact));
    const body = {
      artifact: encodeBase64(artifact),
      epoch,
      digest,
      operatorKey: encodeBase64(operator.publicKey),
      signature: encodeBase64(operator.sign(submissionMessage(namespace, epoch, digest))),
      ...(evidence ? { evidence: encodeBase64(evidence) } : {}),
    };
    return this.json(`/v1/namespaces/${WitnessClient.ns(namespace)}/epochs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** Operator: upload the fleet's counter-signature for an epoch. */
  uploadCounterSignature(namespace: string, epoch: number, counterSignature: Uint8Array): Promise<EpochRecord> {
    return this.json(`/v1/namespaces/${WitnessClient.ns(namespace)}/epochs/${epoch}/counter-signature`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ counterSignature: encodeBase64(counterSignature) }),
    });
  }
}

/** The operator flow in one call: submit → witness signs → fleet counter-signs → upload. */
export async function publishEpoch(
  witness: WitnessClient,
  p: {
    namespace: string;
    artifact: Uint8Array;
    operator: OperatorKey;
    /** Next epoch; default: the witness's latest + 1. */
    epoch?: number;
    /** The fleet's counter-signing: given the message, returns the 64-byte signature. */
    counterSign?: (message: Uint8Array) => Uint8Array | Promise<Uint8Array>;
    /** Deployment evidence (exact bytes) to submit with the artifact. */
    evidence?: Uint8Array;
  },
): Promise<EpochRecord> {
  const epoch = p.epoch ?? (await witness.latestEpochOrZero(p.namespace)) + 1;
  const rec = await witness.submit(p.namespace, epoch, p.artifact, p.operator, p.evidence);
  if (!p.counterSign) return rec;
  const cs = await p.counterSign(counterSignatureMessage(decodeBase64(rec.witnessSignature, 'witnessSignature', 64)));
  return witness.uploadCounterSignature(p.namespace, epoch, cs);
}
