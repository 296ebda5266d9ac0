/**
 * What the witness checks at start about the files beside its statements, which its signed
 * checkpoint does not cover: the deployment evidence logged with an epoch (the `ev` field of a log
 * line) and the static copies in `published/<ns>/<e>/`. Node only.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { EVIDENCE_CHECKS, verifyDeploymentEvidence } from '../shared/evidence/evidence.js';
import { equalBytes } from '../shared/bytes.js';
import { writeFileDurable } from '../node/fs-durable.js';

export interface StoredEpoch {
  namespace: string;
  epoch: number;
  /** When the statement was signed (ms): the evidence was checked against this time. */
  timestamp: number;
  artifact: Uint8Array;
  evidence?: Uint8Array;
}

/**
 * The logged evidence must still verify: about this epoch's artifact, every device chaining to a
 * vendor root the evidence names and valid when the epoch was logged, every signature intact. The
 * allow lists are not applied again (they are a submission policy and may have changed since).
 * Throws VERIFICATION_FAILED with details.check "evidence.<check>".
 */
export function checkLoggedEvidence(e: StoredEpoch): void {
  if (!e.evidence) return;
  const r = verifyDeploymentEvidence(e.evidence, { artifact: e.artifact, now: e.timestamp });
  if (r.ok) return;
  const c = EVIDENCE_CHECKS.find((k) => !r.checks[k].ok)!;
  throw new BkvError(
    'VERIFICATION_FAILED',
    `the deployment evidence logged with ${e.namespace} epoch ${e.epoch} no longer verifies (${c}): ${r.checks[c].error}`,
    { check: `evidence.${c}`, namespace: e.namespace, epoch: e.epoch },
  );
}

/**
 * The static copies must be the logged bytes. A missing copy is written from the log (a crash
 * after logging can leave it unwritten); one that differs is refused: VERIFICATION_FAILED with
 * details.check "published-copy" and the file's path.
 */
export async function checkPublishedCopies(dir: string, epochs: Iterable<StoredEpoch>): Promise<void> {
  for (const e of epochs) {
    const d = join(dir, 'published', e.namespace, String(e.epoch));
    const files: [string, Uint8Array][] = [['artifact.json', e.artifact]];
    if (e.evidence) files.push(['evidence.json', e.evidence]);
    for (const [name, logged] of files) {
      const path = join(d, name);
      let stored: Uint8Array | undefined;
      try {
        stored = new Uint8Array(await readFile(path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BkvError('IO', `cannot read ${path}: ${(err as Error).message}`);
      }
      if (stored === undefined) {
        try {
          await mkdir(d, { recursive: true });
          await writeFileDurable(path, logged, 0o644);
        } catch (err) {
          throw new BkvError('IO', `cannot write ${path}: ${(err as Error).message}`);
        }
      } else if (!equalBytes(stored, logged)) {
        throw new BkvError(
          'VERIFICATION_FAILED',
          `${path} is not the ${name === 'artifact.json' ? 'artifact' : 'deployment evidence'} logged with ${e.namespace} epoch ${e.epoch}: ` +
            'the copy was altered or corrupted (remove it and the witness writes it again from its log at start)',
          { check: 'published-copy', path, namespace: e.namespace, epoch: e.epoch },
        );
      }
    }
  }
}
