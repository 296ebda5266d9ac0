/**
 * The witness log: namespaces of epochs, an RFC 6962 Merkle tree of every statement, signed
 * checkpoints, counter-signatures. Node only.
 *
 * Durability: one append-only file `witness.log` of JSON lines. Every accepted statement and
 * counter-signature is written and fsync'd before it is acknowledged; appends that arrive while a
 * write is in flight are batched into the next single write + fsync (group commit). After each
 * batch a new checkpoint is signed and saved to `checkpoint`; on start the log is replayed and must
 * reproduce that checkpoint, so a truncated or rewritten log is refused. What the checkpoint does
 * not cover is checked too: every signature, counter-signature and logged deployment evidence must
 * still verify, and the static copies in `published/` must be the logged bytes (stored-evidence.ts).
 */
import { openLocked, type DirLock } from '../node/dir-lock.js';
import { writeFileDurable } from '../node/fs-durable.js';
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { artifactDigest, fleetPublicKeys, parseFleetArtifact } from '../shared/fleet-formats/artifact.js';
import { signCheckpoint, verifyCheckpoint, type SignedCheckpoint } from '../client/fleet/checkpoint.js';
import { verifyCounterSignature } from '../shared/fleet-formats/countersign.js';
import { checkNamespace, decodeBase64, decodeHex, encodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import { formatVerifierKey, formatKeyId, type NoteSigner } from '../shared/fleet-formats/note.js';
import { encodeStatement, parseStatement } from '../shared/fleet-formats/statement.js';
import { MerkleTree } from '../shared/merkle/index.js';
import { assertDeploymentEvidence } from '../shared/evidence/evidence.js';
import { fastVerify, loadWitnessIdentity, type WitnessConfig } from './keys.js';
import { addSignatureLines } from '../client/fleet/cosignature.js';
import { parseNote } from '../shared/fleet-formats/note.js';
import { WitnessCosigner } from './cosigner.js';
import { CosignatureCollector, type CosignerStatus } from './cosigning.js';
import { checkLoggedEvidence, checkPublishedCopies } from './stored-evidence.js';
import { submissionMessage, type EpochRecord, type SubmissionBody, type WitnessKeyInfo } from './protocol.js';
import { equalBytes } from '../shared/bytes.js';

interface Entry {
  namespace: string;
  epoch: number;
  timestamp: number;
  digest: Uint8Array;
  statement: Uint8Array;
  signature: Uint8Array;
  artifact: Uint8Array;
  leafIndex: number;
  counterSignature?: Uint8Array;
  /** the exact deployment-evidence bytes, when submitted */
  evidence?: Uint8Array;
}

interface Pending {
  line: string;
  apply: () => void;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export interface WitnessLogOptions {
  origin?: string;
  addOperatorKeys?: string[];
  addAllowedVendors?: string[];
  addAllowedMeasurements?: string[];
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** C2SP tlog-witness: log verifier keys this witness cosigns (added to config.json). */
  addCosignLogs?: string[];
  /** Cosigners to submit each new checkpoint to (added to config.json). */
  addCosigners?: { url: string; verifierKey: string }[];
  /** Time limit per cosigner request, milliseconds (default 5000). */
  cosignTimeoutMs?: number;
  /** Told when a cosigner refuses or cannot be reached (with the reason it gave). */
  onCosignerError?: (status: CosignerStatus) => void;
  /** While a cosigner's line is missing, ask again after this many milliseconds (default 30000; 0: never). */
  cosignRetryMs?: number;
}

export class WitnessLog {
  readonly tree = new MerkleTree();
  private readonly entries: Entry[] = [];
  private readonly byNs = new Map<string, Entry[]>();
  /** Reserved (accepted, maybe not yet durable) state used to validate new submissions. */
  private readonly reservedEpoch = new Map<string, number>();
  private readonly reservedDigests = new Map<string, Set<string>>();
  private readonly reservedCounterSigs = new Set<string>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private broken: Error | null = null;
  private latest!: SignedCheckpoint;
  private closed = false;
  private nextLeaf = 0;
  /** This witness as a tlog-witness cosigner of other logs (POST /add-checkpoint). */
  cosigner!: WitnessCosigner;
  /** Gathers cosignatures on this log's checkpoints, when cosigners are configured. */
  collector: CosignatureCollector | undefined;
  private cosigning: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  private cosignRetryMs = 30_000;

  private constructor(
    readonly dir: string,
    readonly config: WitnessConfig,
    readonly signer: NoteSigner,
    private readonly fh: FileHandle,
    readonly now: () => number,
    private readonly lock: DirLock,
  ) {}

  static async open(dir: string, opts: WitnessLogOptions = {}): Promise<WitnessLog> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Before anything here is read or written (configuration, log, the cosigner's journal):
    // another witness process may be running on this directory.
    return openLocked(dir, 'witness directory', (lock) => WitnessLog.openLocked(dir, opts, lock));
  }

  private static async openLocked(dir: string, opts: WitnessLogOptions, lock: DirLock): Promise<WitnessLog> {
    const { config, signer, cosigner } = await loadWitnessIdentity(dir, opts);
    const path = join(dir, 'witness.log');
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new BkvError('IO', `cannot read ${path}`);
      data = Buffer.alloc(0);
    }
    // A torn final line (crash during a write) was never acknowledged: drop it.
    const lastNl = data.lastIndexOf(0x0a);
    const good = lastNl + 1;
    const fh = await open(path, 'a+');
    if (good < data.length) {
      await fh.truncate(good);
      await fh.sync();
    }
    const log = new WitnessLog(dir, config, signer, fh, opts.now ?? Date.now, lock);
    log.cosignRetryMs = opts.cosignRetryMs ?? 30_000;
    try {
      log.cosigner = await WitnessCosigner.open(dir, { logKeys: config.cosignLogs ?? [], cosigner, now: log.now });
      if (config.cosigners && config.cosigners.length > 0) {
        log.collector = new CosignatureCollector(config.cosigners, {
          consistencyProof: (a, b) => log.tree.consistencyProof(a, b),
          timeoutMs: opts.cosignTimeoutMs ?? 5000,
          now: log.now,
          ...(opts.onCosignerError ? { onError: opts.onCosignerError } : {}),
        });
      }
      log.replay(data.subarray(0, good).toString('utf8'));
      log.nextLeaf = log.entries.length;
      await log.checkPersistedCheckpoint();
      await checkPublishedCopies(dir, log.entries);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return log;
  }

  private replay(text: string): void {
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      if (line === '') continue;
      try {
        const r = JSON.parse(line) as Record<string, string | number>;
        if (r.t === 's') {
          const statement = decodeBase64(r.st, 'statement');
          const st = parseStatement(statement);
          const e: Entry = {
            namespace: st.namespace,
            epoch: st.epoch,
            timestamp: st.timestamp,
            digest: st.digest,
            statement,
            signature: decodeBase64(r.sig, 'signature', 64),
            artifact: decodeBase64(r.art, 'artifact'),
            leafIndex: this.entries.length,
            ...(typeof r.ev === 'string' ? { evidence: decodeBase64(r.ev, 'evidence') } : {}),
          };
          if (!equalBytes(artifactDigest(e.artifact), e.digest)) throw new Error('artifact does not match digest');
          if (st.witness !== this.config.origin || !fastVerify(e.signature, statement, this.signer.publicKey)) {
            throw new BkvError('VERIFICATION_FAILED', `the signature on ${e.namespace} epoch ${e.epoch} is not this witness's`, { check: 'witness-signature' });
          }
          const prev = this.reservedEpoch.get(e.namespace) ?? 0;
          if (e.epoch !== prev + 1) throw new Error('epochs out of order');
          checkLoggedEvidence(e);
          this.reserve(e.namespace, e.epoch, encodeHex(e.digest));
          this.applyEntry(e);
        } else if (r.t === 'c') {
          const e = this.byNs.get(String(r.ns))?.[Number(r.e) - 1];
          if (!e) throw new Error('counter-signature for an unknown epoch');
          e.counterSignature = decodeBase64(r.cs, 'counter-signature', 64);
          verifyCounterSignature(e.signature, e.counterSignature, fleetPublicKeys(parseFleetArtifact(e.artifact)).signingPublicKey);
          this.reservedCounterSigs.add(`${e.namespace}\n${e.epoch}`);
        } else throw new Error('unknown record type');
      } catch (err) {
        // A stored signature or evidence that no longer verifies keeps its code and check.
        const failed = err instanceof BkvError && err.code === 'VERIFICATION_FAILED';
        throw new BkvError(failed ? 'VERIFICATION_FAILED' : 'IO', `witness.log line ${lineNo} is corrupt: ${(err as Error).message}`, {
          line: lineNo,
          ...(failed ? err.details : {}),
        });
      }
    }
  }

  private async checkPersistedCheckpoint(): Promise<void> {
    const path = join(this.dir, 'checkpoint');
    let note: string | undefined;
    try {
      note = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new BkvError('IO', `cannot read ${path}`);
    }
    if (note !== undefined) {
      const cp = verifyCheckpoint(note, this.signer);
      if (cp.size > this.tree.size || !equalBytes(this.tree.root(cp.size), cp.rootHash)) {
        throw new BkvError(
          'VERIFICATION_FAILED',
          `witness.log does not reproduce the signed checkpoint of size ${cp.size} (log has ${this.tree.size} entries): truncated or rewritten log`,
        );
      }
    }
    this.latest = this.signLatest();
    if (note !== undefined) {
      // keep the cosignatures gathered for this same checkpoint before the restart
      const old = parseNote(note);
      if (old.text === parseNote(this.latest.note).text) {
        const lines = note.slice(old.text.length + 1).split('\n').filter((l) => l !== '');
        this.latest = { ...this.latest, note: addSignatureLines(this.latest.note, lines) };
      }
    }
    await this.saveCheckpoint();
  }

  /**
   * Submits the current checkpoint to the configured cosigners and serves it with the
   * cosignatures they return. Never throws: refusals are in collector.status().
   */
  async gatherCosignatures(): Promise<void> {
    if (!this.collector) return;
    const cp = this.latest;
    let note: string;
    try {
      note = await this.collector.collect(cp.note);
    } catch {
      return;
    }
    this.scheduleRetry();
    if (this.latest.size === cp.size && equalBytes(this.latest.rootHash, cp.rootHash) && note !== this.latest.note) {
      this.latest = { ...this.latest, note: addSignatureLines(this.latest.note, note.slice(parseNote(note).text.length + 1).split('\n').filter((l) => l !== '')) };
      try {
        await this.saveCheckpoint();
      } catch {
        /* the served copy is in memory; the file is rewritten with the next checkpoint */
      }
    }
  }

  /** An offline or refusing cosigner is asked again later (a new checkpoint asks it anyway). */
  private scheduleRetry(): void {
    if (this.retryTimer || this.closed || this.cosignRetryMs <= 0 || !this.collector) return;
    if (this.collector.status().every((s) => s.lastError === undefined)) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed) void this.refreshCosignatures();
    }, this.cosignRetryMs);
    this.retryTimer.unref();
  }

  /** Gathers cosignatures on the current checkpoint in the background (after a start). */
  refreshCosignatures(): Promise<void> {
    const tracked: Promise<void> = this.gatherCosignatures().finally(() => {
      if (this.cosigning === tracked) this.cosigning = null;
    });
    this.cosigning = tracked;
    return tracked;
  }

  private signLatest(): SignedCheckpoint {
    const size = this.tree.size;
    const note = signCheckpoint({ origin: this.config.origin, size, rootHash: this.tree.root(size), extensions: [] }, this.signer);
    return verifyCheckpoint(note, this.signer);
  }

  /** Writes the served checkpoint to `checkpoint`; writes run one at a time (the flush and a cosignature refresh both save). */
  private saveCheckpoint(): Promise<void> {
    const write = async () => {
      const path = join(this.dir, 'checkpoint');
      await writeFileDurable(path, this.latest.note, 0o644);
    };
    const run = this.saving.then(write, write);
    this.saving = run.catch(() => undefined);
    return run;
  }

  private reserve(ns: string, epoch: number, digestHex: string): void {
    this.reservedEpoch.set(ns, epoch);
    let set = this.reservedDigests.get(ns);
    if (!set) this.reservedDigests.set(ns, (set = new Set()));
    set.add(digestHex);
  }

  private applyEntry(e: Entry): void {
    this.tree.appendEntry(e.statement);
    this.entries.push(e);
    let list = this.byNs.get(e.namespace);
    if (!list) this.byNs.set(e.namespace, (list = []));
    list.push(e);
  }

  /** Group commit: one write and one fsync for everything queued. */
  private enqueue(line: string, apply: () => void): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new BkvError('UNAVAILABLE', 'witness log is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, apply, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    // Let concurrent callers in the same tick join the first batch.
    await Promise.resolve();
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.fh.write(batch.map((p) => p.line).join(''));
        await this.fh.datasync();
        for (const p of batch) p.apply();
        if (this.tree.size !== this.latest.size) {
          this.latest = this.signLatest();
          await this.saveCheckpoint();
          // cosigned before the answer, so a published epoch is served with its cosignatures
          await this.gatherCosignatures();
        }
        for (const p of batch) p.resolve();
      } catch (err) {
        // A failed write or fsync leaves the file in an unknown state: stop accepting anything.
        this.broken = new BkvError('IO', `witness log write failed: ${(err as Error).message}`);
        for (const p of [...batch, ...this.queue]) p.reject(this.broken);
        this.queue = [];
      }
    }
    this.flushing = null;
  }

  keyInfo(): WitnessKeyInfo {
    return {
      origin: this.config.origin,
      verifierKey: formatVerifierKey(this.config.origin, this.signer.publicKey),
      publicKey: encodeBase64(this.signer.publicKey),
      keyId: formatKeyId(this.signer.keyId),
      cosignerVerifierKey: this.cosigner.verifierKey(),
    };
  }

  /** Operator submission: authenticate, check epoch and digest, sign, log durably. */
  async submit(namespace: string, body: SubmissionBody): Promise<EpochRecord> {
    checkNamespace(namespace);
    if (typeof body !== 'object' || body === null) throw new BkvError('MALFORMED', 'submission must be a JSON object');
    const { epoch } = body;
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 1) {
      throw new BkvError('MALFORMED', 'epoch must be a positive integer');
    }
    const digest = decodeHex(body.digest, 'digest', 32);
    const opKey = decodeBase64(body.operatorKey, 'operatorKey', 32);
    const sig = decodeBase64(body.signature, 'signature', 64);
    if (!this.config.operatorKeys.includes(body.operatorKey)) {
      throw new BkvError('UNAUTHORIZED', 'operator key is not registered with this witness');
    }
    if (!fastVerify(sig, submissionMessage(namespace, epoch, body.digest), opKey)) {
      throw new BkvError('UNAUTHORIZED', 'operator signature on the submission is invalid');
    }
    const artifact = decodeBase64(body.artifact, 'artifact');
    if (!equalBytes(artifactDigest(artifact), digest)) {
      throw new BkvError('VERIFICATION_FAILED', 'artifact does not match the submitted digest');
    }
    const parsed = parseFleetArtifact(artifact);
    if (parsed.namespace !== namespace) throw new BkvError('MALFORMED', `artifact is for namespace "${parsed.namespace}"`);
    const evidence = body.evidence === undefined ? undefined : decodeBase64(body.evidence, 'evidence');
    this.checkEvidence(artifact, evidence);
    const rec = await this.logStatement(namespace, epoch, digest, artifact, evidence);
    await this.publishFiles(namespace, epoch, artifact, evidence);
    return rec;
  }

  /** True when the witness has an evidence policy (either allow list configured). */
  get evidenceRequired(): boolean {
    return this.config.allowedVendors !== undefined || this.config.allowedMeasurements !== undefined;
  }

  /**
   * The deployment-evidence policy: with allow lists, evidence is required and must chain to an
   * allowed vendor root and attest an allowed measurement; without, evidence is optional but
   * verified (against the vendor roots it names) whenever present. Refusals are
   * VERIFICATION_FAILED (HTTP 422) with details.check naming the failed check.
   */
  private checkEvidence(artifact: Uint8Array, evidence: Uint8Array | undefined): void {
    if (evidence === undefined) {
      if (this.evidenceRequired) {
        throw new BkvError('VERIFICATION_FAILED', 'this witness logs only fleets with deployment evidence; none was submitted', {
          check: 'evidence.missing',
        });
      }
      return;
    }
    assertDeploymentEvidence(evidence, {
      artifact,
      now: this.now(),
      ...(this.config.allowedVendors ? { vendorRoots: this.config.allowedVendors.map((k) => decodeBase64(k, 'allowed vendor', 32)) } : {}),
      ...(this.config.allowedMeasurements ? { allowedMeasurements: this.config.allowedMeasurements } : {}),
    });
  }

  /** Static copies for anyone to fetch or mirror: published/<ns>/<epoch>/{artifact,evidence}.json */
  private async publishFiles(namespace: string, epoch: number, artifact: Uint8Array, evidence: Uint8Array | undefined): Promise<void> {
    const { mkdir } = await import('node:fs/promises');
    const d = join(this.dir, 'published', namespace, String(epoch));
    try {
      await mkdir(d, { recursive: true });
      await writeFileDurable(join(d, 'artifact.json'), artifact, 0o644);
      if (evidence) await writeFileDurable(join(d, 'evidence.json'), evidence, 0o644);
    } catch {
      /* the log is authoritative; the static copies are a convenience */
    }
  }

  /**
   * Logs a statement for an artifact that has already been authenticated and parsed (submit()
   * does both): enforces the epoch and digest rules, signs, and appends durably.
   */
  async logStatement(namespace: string, epoch: number, digest: Uint8Array, artifact: Uint8Array, evidence?: Uint8Array): Promise<EpochRecord> {
    const digestHex = encodeHex(digest);
    const prev = this.reservedEpoch.get(namespace) ?? 0;
    if (epoch !== prev + 1) {
      throw new BkvError('CONFLICT', `epoch ${epoch} rejected: the next epoch of "${namespace}" is ${prev + 1}`, {
        expectedEpoch: prev + 1,
      });
    }
    if (this.reservedDigests.get(namespace)?.has(digestHex)) {
      throw new BkvError('CONFLICT', `digest ${digestHex} was already logged in "${namespace}"`);
    }
    const timestamp = this.now();
    const statement = encodeStatement({ witness: this.config.origin, namespace, epoch, timestamp, digest });
    const signature = this.signer.sign(statement);
    const leafIndex = this.nextLeaf++;
    this.reserve(namespace, epoch, digestHex);
    const e: Entry = { namespace, epoch, timestamp, digest, statement, signature, artifact, leafIndex, ...(evidence ? { evidence } : {}) };
    const line =
      JSON.stringify({
        t: 's',
        st: encodeBase64(statement),
        sig: encodeBase64(signature),
        art: encodeBase64(artifact),
        ...(evidence ? { ev: encodeBase64(evidence) } : {}),
      }) + '\n';
    await this.enqueue(line, () => this.applyEntry(e));
    return this.record(e);
  }

  async addCounterSignature(namespace: string, epoch: number, counterSignatureB64: string): Promise<EpochRecord> {
    const e = this.getEntry(namespace, epoch);
    const cs = decodeBase64(counterSignatureB64, 'counterSignature', 64);
    verifyCounterSignature(e.signature, cs, fleetPublicKeys(parseFleetArtifact(e.artifact)).signingPublicKey);
    const key = `${namespace}\n${epoch}`;
    if (this.reservedCounterSigs.has(key)) {
      if (e.counterSignature && equalBytes(e.counterSignature, cs)) return this.record(e);
      throw new BkvError('CONFLICT', `epoch ${epoch} of "${namespace}" already has a counter-signature`);
    }
    this.reservedCounterSigs.add(key);
    const line = JSON.stringify({ t: 'c', ns: namespace, e: epoch, cs: counterSignatureB64 }) + '\n';
    await this.enqueue(line, () => {
      e.counterSignature = cs;
    });
    return this.record(e);
  }

  private record(e: Entry): EpochRecord {
    return {
      namespace: e.namespace,
      epoch: e.epoch,
      timestamp: e.timestamp,
      digest: encodeHex(e.digest),
      statement: encodeBase64(e.statement),
      witnessSignature: encodeBase64(e.signature),
      leafIndex: e.leafIndex,
      ...(e.counterSignature ? { counterSignature: encodeBase64(e.counterSignature) } : {}),
      ...(e.evidence ? { evidence: true } : {}),
    };
  }

  private getEntry(namespace: string, epoch: number): Entry {
    checkNamespace(namespace);
    const e = this.byNs.get(namespace)?.[epoch - 1];
    if (!Number.isSafeInteger(epoch) || !e) {
      throw new BkvError('USAGE', `no epoch ${epoch} in namespace "${namespace}"`, { status: 404 });
    }
    return e;
  }

  namespaces(): { namespace: string; latestEpoch: number }[] {
    return [...this.byNs.entries()].map(([namespace, list]) => ({ namespace, latestEpoch: list.length }));
  }

  latestEpoch(namespace: string): number {
    checkNamespace(namespace);
    const n = this.byNs.get(namespace)?.length ?? 0;
    if (n === 0) throw new BkvError('USAGE', `unknown namespace "${namespace}"`, { status: 404 });
    return n;
  }

  epochRecord(namespace: string, epoch: number): EpochRecord {
    return this.record(this.getEntry(namespace, epoch));
  }

  artifact(namespace: string, epoch: number): Uint8Array {
    return this.getEntry(namespace, epoch).artifact;
  }

  /** The deployment evidence logged with an epoch (404 when it has none). */
  evidence(namespace: string, epoch: number): Uint8Array {
    const e = this.getEntry(namespace, epoch);
    if (!e.evidence) throw new BkvError('USAGE', `epoch ${epoch} of "${namespace}" was logged without deployment evidence`, { status: 404 });
    return e.evidence;
  }

  checkpoint(): SignedCheckpoint {
    return this.latest;
  }

  /** Entries are served in entry bundles (tlog-tiles). */
  entry(index: number): Uint8Array {
    const e = this.entries[index];
    if (!e) throw new BkvError('USAGE', `no entry ${index}`, { status: 404 });
    return e.statement;
  }

  /** Proofs are only served for sizes covered by a signed checkpoint. */
  private checkProofSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.latest.size) {
      throw new BkvError('USAGE', `tree size ${size} is not covered by a checkpoint (latest ${this.latest.size})`, { status: 404 });
    }
  }

  inclusionProof(index: number, size: number): Uint8Array[] {
    this.checkProofSize(size);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new BkvError('USAGE', `leaf ${index} is not in the tree of size ${size}`, { status: 404 });
    }
    return this.tree.inclusionProof(index, size);
  }

  consistencyProof(size1: number, size2: number): Uint8Array[] {
    this.checkProofSize(size2);
    if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) {
      throw new BkvError('USAGE', `size1 ${size1} must be within 0..${size2}`);
    }
    return this.tree.consistencyProof(size1, size2);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    while (this.flushing) await this.flushing;
    while (this.cosigning) await this.cosigning;
    await this.cosigner.close();
    await this.fh.close();
    this.lock.release();
  }
}
