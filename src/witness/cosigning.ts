/**
 * The log side of C2SP tlog-witness: after each new checkpoint, the fleet-key witness submits it
 * with a consistency proof to its configured cosigners and keeps the cosignature lines they return
 * (verified against each cosigner's key), so it can serve the checkpoint as one signed note with
 * the log's signature and the cosignatures. Node only.
 */
import { BkvError } from '../shared/errors.js';
import { parseCheckpointBody } from '../client/fleet/checkpoint.js';
import {
  addSignatureLines,
  checkCosignatures,
  parseCosignerVerifierKey,
  parseSignatureLines,
  type CosignerVerifier,
} from '../client/fleet/cosignature.js';
import { encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { parseNote } from '../shared/fleet-formats/note.js';

export interface CosignerEndpointConfig {
  /** Submission prefix: add-checkpoint is POSTed to `<url>/add-checkpoint`. */
  url: string;
  /** The cosigner's type-0x04 verifier key. */
  verifierKey: string;
}

export interface CosignerStatus {
  url: string;
  name: string;
  verifierKey: string;
  /** The tree size this cosigner last cosigned for us (as far as we know). */
  cosignedSize?: number;
  /** When the last attempt ended (ms) and how: "ok", or the reason the cosigner gave. */
  lastAttempt?: number;
  lastStatus?: number;
  lastError?: string;
}

interface Endpoint {
  cfg: CosignerEndpointConfig;
  verifier: CosignerVerifier;
  status: CosignerStatus;
}

export interface CollectorOptions {
  /** Per-request time limit, milliseconds (default 5000). */
  timeoutMs?: number;
  /** Consistency proof between two sizes of the log. */
  consistencyProof: (size1: number, size2: number) => Uint8Array[];
  /** Told about every refusal (the operator learns why a cosigner would not cosign). */
  onError?: (status: CosignerStatus) => void;
  now?: () => number;
}

/** Reads the cosigner list from config form, refusing bad URLs and keys. */
export function parseCosignerEndpoints(list: readonly CosignerEndpointConfig[]): { cfg: CosignerEndpointConfig; verifier: CosignerVerifier }[] {
  return list.map((c) => {
    if (typeof c?.url !== 'string' || !/^https?:\/\/[^\s]+$/.test(c.url)) throw new BkvError('USAGE', `cosigner URL "${String(c?.url)}" must be http(s)://…`);
    return { cfg: { url: c.url.replace(/\/+$/, ''), verifierKey: c.verifierKey }, verifier: parseCosignerVerifierKey(c.verifierKey) };
  });
}

export class CosignatureCollector {
  private readonly endpoints: Endpoint[];
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(
    list: readonly CosignerEndpointConfig[],
    private readonly opts: CollectorOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.endpoints = parseCosignerEndpoints(list).map(({ cfg, verifier }) => ({
      cfg,
      verifier,
      status: { url: cfg.url, name: verifier.name, verifierKey: cfg.verifierKey },
    }));
  }

  get size(): number {
    return this.endpoints.length;
  }

  status(): CosignerStatus[] {
    return this.endpoints.map((e) => ({ ...e.status }));
  }

  /**
   * Submits `note` (the log's signed checkpoint) to every cosigner, in parallel, and returns the
   * note with the valid cosignature lines added. Calls run one after another (a cosigner needs the
   * sizes in order). Never throws for a cosigner's failure: it is recorded in status().
   */
  collect(note: string): Promise<string> {
    const run = this.chain.then(() => this.collectNow(note));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async collectNow(note: string): Promise<string> {
    const cp = parseCheckpointBody(parseNote(note).text);
    const lines = await Promise.all(this.endpoints.map((e) => this.one(e, note, cp.size)));
    return addSignatureLines(note, lines.flat());
  }

  private async one(e: Endpoint, note: string, size: number): Promise<string[]> {
    let old = e.status.cosignedSize !== undefined && e.status.cosignedSize <= size ? e.status.cosignedSize : 0;
    const fail = (status: number | undefined, msg: string): string[] => {
      e.status.lastAttempt = this.now();
      if (status !== undefined) e.status.lastStatus = status;
      else delete e.status.lastStatus;
      e.status.lastError = msg;
      this.opts.onError?.({ ...e.status });
      return [];
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof = old > 0 && old < size ? this.opts.consistencyProof(old, size) : [];
      const body = `old ${old}\n${proof.map((p) => encodeBase64(p) + '\n').join('')}\n${note}`;
      let res: Response;
      let text: string;
      try {
        res = await fetch(`${e.cfg.url}/add-checkpoint`, {
          method: 'POST',
          headers: { 'content-type': 'text/plain; charset=utf-8' },
          body,
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
        });
        text = await res.text();
      } catch (err) {
        return fail(undefined, `unreachable: ${(err as Error).message}`);
      }
      if (res.status === 409 && attempt === 0) {
        const m = /^(0|[1-9][0-9]*)\n$/.exec(text);
        const theirs = m ? Number(m[1]) : NaN;
        if (!Number.isSafeInteger(theirs)) return fail(409, `409 with a malformed size body: ${JSON.stringify(text.slice(0, 80))}`);
        if (theirs > size) {
          return fail(409, `the cosigner has cosigned tree size ${theirs}, larger than this log's ${size}: the log was rolled back or forked`);
        }
        old = theirs;
        continue;
      }
      if (res.status !== 200) return fail(res.status, `HTTP ${res.status}: ${text.trim().slice(0, 500)}`);
      let got: string[];
      try {
        // keep only lines that are valid cosignatures by this cosigner's key
        got = parseSignatureLines(text).filter((l) => checkCosignatures(addSignatureLines(note, [l]), [e.verifier]).valid.length === 1);
        if (got.length === 0) throw new Error('no valid cosignature by the configured key');
      } catch (err) {
        return fail(200, `answer is not a valid cosignature by ${e.verifier.name}: ${(err as Error).message}`);
      }
      e.status.cosignedSize = size;
      e.status.lastAttempt = this.now();
      e.status.lastStatus = 200;
      delete e.status.lastError;
      return got;
    }
    return fail(409, 'the cosigner kept answering 409');
  }
}
