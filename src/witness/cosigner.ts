/**
 * The witness as a C2SP tlog-witness (v1.0.0) for the logs it is told to watch: `add-checkpoint`
 * verifies a log's checkpoint and a consistency proof from the newest tree it cosigned for that
 * log, persists the new view, and answers a cosignature/v1 line. Node only.
 * Formats: docs/formats/cosignature.md, docs/formats/witness-api.md.
 *
 * State: the journal `cosigned/journal` (cosigner-journal.ts) of the checkpoints cosigned (the
 * log's verified signatures and ours); the latest record of a log is its view. A record is on disk
 * before the answer (concurrent requests share one fdatasync); requests for one log run one at a
 * time, so the check of the old size and the update are atomic.
 */
import { equalBytes } from '../shared/bytes.js';
import { createHash, type KeyObject, verify as nodeVerify } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { parseCheckpointBody, type Checkpoint } from '../client/fleet/checkpoint.js';
import { cosignatureLine, formatCosignerVerifierKey, type Cosigner } from '../client/fleet/cosignature.js';
import { decodeBase64, encodeBase64, fromUtf8, parseDecimal } from '../shared/fleet-formats/encoding.js';
import { parseNote, parseVerifierKey, type NoteVerifier, type ParsedNote } from '../shared/fleet-formats/note.js';
import { emptyRoot, verifyConsistency, MerkleProofError } from '../shared/merkle/index.js';
import { CosignerJournal } from './cosigner-journal.js';
import { nodePublicKey } from './keys.js';

/** Proof lines a client may send (C2SP tlog-witness). */
export const MAX_PROOF_LINES = 63;
/** Largest add-checkpoint body accepted (old line, 63 proof lines, a checkpoint with 100 signatures). */
export const MAX_ADD_CHECKPOINT_BYTES = 64 * 1024;
export const TLOG_SIZE_CONTENT_TYPE = 'text/x.tlog.size';

/** A refusal with the HTTP status the tlog-witness spec prescribes. */
export class AddCheckpointError extends BkvError {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 422 | 500,
    message: string,
    /** 409 only: the size of the latest checkpoint cosigned for this log. */
    readonly latestSize?: number,
  ) {
    super(status === 400 ? 'MALFORMED' : status === 409 ? 'CONFLICT' : status === 404 ? 'USAGE' : status === 403 ? 'UNAUTHORIZED' : status === 500 ? 'IO' : 'VERIFICATION_FAILED', message, {
      status,
      ...(latestSize !== undefined ? { latestSize } : {}),
    });
    this.name = 'AddCheckpointError';
  }
}

export interface AddCheckpointRequest {
  oldSize: number;
  proof: Uint8Array[];
  /** The checkpoint note exactly as sent. */
  note: string;
}

/** Strict parse of an add-checkpoint body; AddCheckpointError(400) says what is wrong. */
export function parseAddCheckpointBody(body: Uint8Array | string): AddCheckpointRequest {
  const bad = (m: string) => new AddCheckpointError(400, `malformed add-checkpoint body: ${m}`);
  if (body.length > MAX_ADD_CHECKPOINT_BYTES) throw bad(`larger than ${MAX_ADD_CHECKPOINT_BYTES} bytes`);
  let text: string;
  try {
    text = typeof body === 'string' ? body : fromUtf8(body, 'body');
  } catch {
    throw bad('not valid UTF-8');
  }
  let pos = 0;
  const nextLine = (what: string): string => {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) throw bad(`${what} is missing or does not end with a newline`);
    const line = text.slice(pos, nl);
    pos = nl + 1;
    return line;
  };
  const oldLine = nextLine('the old size line');
  const m = /^old (0|[1-9][0-9]*)$/.exec(oldLine);
  if (!m) throw bad('the first line must be "old <size>" (decimal, no leading zeros)');
  let oldSize: number;
  try {
    oldSize = parseDecimal(m[1]!, 'old size');
  } catch {
    throw bad('old size is out of range');
  }
  const proof: Uint8Array[] = [];
  for (;;) {
    const line = nextLine('the blank line before the checkpoint');
    if (line === '') break;
    if (proof.length === MAX_PROOF_LINES) throw bad(`more than ${MAX_PROOF_LINES} consistency proof lines`);
    try {
      proof.push(decodeBase64(line, 'proof hash', 32));
    } catch {
      throw bad(`consistency proof line ${proof.length + 1} is not a base64 32-byte hash`);
    }
  }
  const note = text.slice(pos);
  if (note === '') throw bad('no checkpoint after the blank line');
  return { oldSize, proof, note };
}

export function originHash(origin: string): string {
  return createHash('sha256').update(origin, 'utf8').digest('hex');
}

interface LogView {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  /** checkpoint body, the log's verified signature lines and our cosignature */
  note: string;
}

interface WatchedLog {
  verifiers: { v: NoteVerifier; key: KeyObject }[];
}

export interface CosignerOptions {
  /** Log verifier keys (name = origin) whose checkpoints this witness cosigns. */
  logKeys: readonly string[];
  /** Cosigner key name and signing. */
  cosigner: Cosigner;
  /** Clock, milliseconds. */
  now?: () => number;
  /** Called with each refused request that carried a valid log signature (evidence of misbehaviour). */
  onRefused?: (origin: string, err: AddCheckpointError) => void;
}

export class WitnessCosigner {
  private readonly logs = new Map<string, WatchedLog>();
  private readonly views = new Map<string, LogView>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private refusedKept = 0;
  private journal!: CosignerJournal;

  private constructor(
    readonly dir: string,
    private readonly opts: CosignerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    for (const k of opts.logKeys) {
      const v = parseVerifierKey(k);
      let w = this.logs.get(v.name);
      if (!w) this.logs.set(v.name, (w = { verifiers: [] }));
      if (!w.verifiers.some((x) => x.v.keyId === v.keyId)) w.verifiers.push({ v, key: nodePublicKey(v.publicKey) });
    }
  }

  /** Loads the per-log state from `<dir>/cosigned/journal`; a record that does not parse stops the start. */
  static async open(dir: string, opts: CosignerOptions): Promise<WitnessCosigner> {
    const c = new WitnessCosigner(join(dir, 'cosigned'), opts);
    await mkdir(c.dir, { recursive: true, mode: 0o700 });
    const { journal, records } = await CosignerJournal.open(c.dir, (note) => parseCheckpointBody(parseNote(note).text).origin);
    c.journal = journal;
    for (const r of records) {
      const cp = parseCheckpointBody(parseNote(r.note).text);
      c.views.set(cp.origin, { origin: cp.origin, size: cp.size, rootHash: cp.rootHash, note: r.note });
    }
    return c;
  }

  close(): Promise<void> {
    return this.journal.close();
  }

  get name(): string {
    return this.opts.cosigner.name;
  }

  verifierKey(): string {
    return formatCosignerVerifierKey(this.opts.cosigner.name, this.opts.cosigner.publicKey);
  }

  watchedLogs(): { origin: string; size: number }[] {
    return [...this.logs.keys()].map((origin) => ({ origin, size: this.views.get(origin)?.size ?? 0 }));
  }

  /** The latest cosigned checkpoint of the log whose origin hashes to `hash`, if any. */
  latestCheckpoint(hash: string): string | undefined {
    for (const v of this.views.values()) if (originHash(v.origin) === hash) return v.note;
    return undefined;
  }

  /** Runs `f` after every earlier request for the same log. */
  private serial<T>(origin: string, f: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(origin) ?? Promise.resolve();
    const run = prev.then(f, f);
    const tail = run.catch(() => undefined);
    this.locks.set(origin, tail);
    void tail.then(() => {
      if (this.locks.get(origin) === tail) this.locks.delete(origin);
    });
    return run;
  }

  /**
   * Handles one add-checkpoint body. Returns the cosignature line(s); throws AddCheckpointError
   * with the status to answer.
   */
  async addCheckpoint(body: Uint8Array | string): Promise<string> {
    const req = parseAddCheckpointBody(body);
    let parsed: ParsedNote;
    let cp: Checkpoint;
    try {
      parsed = parseNote(req.note);
      cp = parseCheckpointBody(parsed.text);
    } catch (e) {
      throw new AddCheckpointError(400, `malformed checkpoint: ${(e as Error).message}`);
    }
    const log = this.logs.get(cp.origin);
    if (!log) throw new AddCheckpointError(404, `unknown log "${cp.origin}": this witness does not cosign it`);
    const msg = Buffer.from(parsed.text, 'utf8');
    const logLines: string[] = [];
    const sigBlock = req.note.slice(parsed.text.length + 1).split('\n');
    parsed.signatures.forEach((s, i) => {
      const k = log.verifiers.find((x) => x.v.name === s.name && x.v.keyId === s.keyId);
      if (!k) return; // other keys (other cosigners) are ignored
      let ok = false;
      try {
        ok = s.signature.length === 64 && nodeVerify(null, msg, k.key, s.signature);
      } catch {
        ok = false;
      }
      if (!ok) throw new AddCheckpointError(403, `the log signature by ${s.name} does not verify`);
      logLines.push(sigBlock[i]!);
    });
    if (logLines.length === 0) throw new AddCheckpointError(403, `the checkpoint carries no signature by a known key of "${cp.origin}"`);
    if (req.oldSize > cp.size) throw new AddCheckpointError(400, `old size ${req.oldSize} is larger than the checkpoint size ${cp.size}`);

    return this.serial(cp.origin, async () => {
      const view = this.views.get(cp.origin);
      const latest = view?.size ?? 0;
      if (req.oldSize !== latest) {
        throw new AddCheckpointError(409, `old size ${req.oldSize} is not the latest size cosigned for "${cp.origin}" (${latest})`, latest);
      }
      try {
        if (cp.size === 0 && !equalBytes(cp.rootHash, emptyRoot())) {
          throw new AddCheckpointError(422, 'a checkpoint of size 0 must have the empty tree hash');
        }
        if (req.oldSize === 0) {
          if (req.proof.length > 0) throw new AddCheckpointError(422, 'old size 0 needs an empty consistency proof');
        } else if (req.oldSize === cp.size) {
          if (!equalBytes(view!.rootHash, cp.rootHash)) {
            throw new AddCheckpointError(
              422,
              `split view: this witness cosigned a different tree of size ${cp.size} for "${cp.origin}" (root ${encodeBase64(view!.rootHash)}, not ${encodeBase64(cp.rootHash)})`,
            );
          }
          if (req.proof.length > 0) throw new AddCheckpointError(422, 'equal sizes need an empty consistency proof');
        } else {
          try {
            verifyConsistency(req.oldSize, cp.size, req.proof, view!.rootHash, cp.rootHash);
          } catch (e) {
            if (!(e instanceof MerkleProofError)) throw e;
            throw new AddCheckpointError(
              422,
              `consistency proof from the cosigned tree of size ${req.oldSize} to ${cp.size} does not verify (${e.message}): a split view or a rewritten log`,
            );
          }
        }
      } catch (e) {
        if (e instanceof AddCheckpointError) await this.refused(cp.origin, req, e);
        throw e;
      }
      const ts = Math.floor(this.now() / 1000);
      if (ts <= 0) throw new AddCheckpointError(500, 'the witness clock is before 1970');
      const line = cosignatureLine(parsed.text, ts, this.opts.cosigner);
      const note = `${parsed.text}\n${logLines.map((l) => l + '\n').join('')}${line}`;
      try {
        await this.journal.append(cp.origin, note);
      } catch (e) {
        throw new AddCheckpointError(500, `cannot persist the new checkpoint: ${(e as Error).message}`);
      }
      this.views.set(cp.origin, { origin: cp.origin, size: cp.size, rootHash: cp.rootHash, note });
      return line;
    });
  }

  /** Keeps a refused, log-signed checkpoint (evidence of a split view); best effort, bounded. */
  private async refused(origin: string, req: AddCheckpointRequest, err: AddCheckpointError): Promise<void> {
    this.opts.onRefused?.(origin, err);
    if (this.refusedKept >= 1000) return;
    this.refusedKept++;
    const d = join(this.dir, 'refused');
    const name = `${originHash(origin).slice(0, 16)}-${this.now()}-${this.refusedKept}.txt`;
    try {
      await mkdir(d, { recursive: true });
      await writeFile(join(d, name), `# ${err.message}\nold ${req.oldSize}\n${req.proof.map((p) => encodeBase64(p) + '\n').join('')}\n${req.note}`);
    } catch {
      /* evidence is kept on a best-effort basis */
    }
  }
}
