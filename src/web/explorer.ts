/**
 * The audit explorer: the witness log as a timeline of namespaces and epochs, each epoch checked
 * in the browser by the same functions as `bkv audit namespace` and `bkv audit deployment`
 * (src/witness/audit.ts, src/ceremony/audit.ts), and pasted validation bundles checked by the
 * function every client uses to accept fleet keys (verifyValidationBundle).
 */
import { auditDeployment, type DeploymentAudit } from '../ceremony/audit.js';
import type { FleetArtifact } from '../shared/fleet-formats/artifact.js';
import { verifyValidationBundle } from '../client/fleet/bundle.js';
import { verifyCheckpoint, type SignedCheckpoint } from '../client/fleet/checkpoint.js';
import { parseVerifierKey } from '../shared/fleet-formats/note.js';
import { encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { checkpointKey, type CheckpointStore } from '../client/fleet/store.js';
import { AUDIT_CHECKS, auditNamespace, type AuditResult, type EpochAudit, type VerifiedEpoch } from '../witness/audit.js';
import { WitnessClient } from '../witness/client.js';
import type { WebConfig } from './vault-config.js';

/** Checkpoints seen, kept in localStorage, so the next visit checks the log only grew. */
export class LocalCheckpointStore implements CheckpointStore {
  constructor(private readonly prefix: string) {}
  async get(key: string): Promise<string | undefined> {
    try {
      return localStorage.getItem(this.prefix + key) ?? undefined;
    } catch {
      return undefined;
    }
  }
  async set(key: string, value: string): Promise<void> {
    try {
      localStorage.setItem(this.prefix + key, value);
    } catch {
      /* storage disabled: consistency is then checked within the visit only */
    }
  }
}

const CHECK_LABELS: Record<string, string> = {
  digest: 'Artifact digest matches the witness statement',
  'witness-signature': 'Witness signature over the statement',
  'counter-signature': 'Fleet counter-signature over the witness signature',
  inclusion: 'Inclusion proof: the statement is in the signed log',
  format: 'Bundle is well formed',
  statement: 'Statement names this namespace and epoch',
  artifact: 'Fleet artifact parses, same namespace',
  'checkpoint-signature': 'Checkpoint signed by the witness',
  consistency: 'Consistency proof with the checkpoint seen before',
  rollback: 'No rollback to an older epoch',
  validity: 'Keys within their validity window',
};

const BUNDLE_CHECKS = ['format', 'digest', 'statement', 'witness-signature', 'artifact', 'counter-signature', 'checkpoint-signature', 'inclusion', 'consistency', 'rollback', 'validity'];

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

function checkItem(ok: boolean | null, label: string, detail?: string): HTMLLIElement {
  const cls = ok === null ? 'skipped' : ok ? 'pass' : 'fail';
  const verdict = ok === null ? 'not reached' : ok ? 'passed' : 'FAILED';
  return h('li', { class: cls, 'data-check': label }, `${label}: ${verdict}${detail ? ` — ${detail}` : ''}`);
}

function kv(pairs: [string, string][]): HTMLDListElement {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of pairs) dl.append(h('dt', {}, k), h('dd', {}, v));
  return dl;
}

function artifactView(a: FleetArtifact): HTMLElement {
  return kv([
    ['fleet', a.fleetId],
    ...a.keys.map((k): [string, string] => [`${k.role} key`, `${k.alg} ${k.publicKey}`]),
    ['members', a.members.map((m) => `${m.id}@${m.site}`).join(', ')],
    ['quorum', String(a.quorum)],
    ['code measurement', a.measurement],
    ['valid', `${a.notBefore} … ${a.notAfter}`],
  ]);
}

function verdict(ok: boolean, text: string): HTMLParagraphElement {
  return h('p', { class: `verdict ${ok ? 'ok' : 'bad'}` }, text);
}

export function initExplorer(config: WebConfig): void {
  const form = document.getElementById('audit-form') as HTMLFormElement;
  const status = document.getElementById('audit-status')!;
  const errorBox = document.getElementById('audit-error')!;
  const out = document.getElementById('audit-result')!;
  const witnessInput = document.getElementById('audit-witness') as HTMLInputElement;
  const keyInput = document.getElementById('audit-witness-key') as HTMLInputElement;
  const bundleKey = document.getElementById('bundle-witness-key') as HTMLInputElement;
  if (config.witnessKey) {
    keyInput.placeholder = config.witnessKey;
    bundleKey.value = config.witnessKey;
  }
  const showError = (m: string | null) => {
    errorBox.hidden = m === null;
    errorBox.textContent = m ?? '';
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      showError(null);
      out.replaceChildren();
      const base = witnessInput.value.trim() || config.witness || '';
      if (!base) return showError('Enter the URL of a witness (for example http://localhost:8730).');
      const btn = document.getElementById('audit-go') as HTMLButtonElement;
      btn.disabled = true;
      status.textContent = `Reading the witness log at ${base}…`;
      try {
        const witness = new WitnessClient(base);
        const pinned = keyInput.value.trim() || (witnessInput.value.trim() ? '' : config.witnessKey ?? '');
        const namespaces = await witness.namespaces();
        if (namespaces.length === 0) {
          status.textContent = 'The witness has logged no namespace yet.';
          return;
        }
        const store = new LocalCheckpointStore(`bkv-explorer:${base}:`);
        let allOk = true;
        for (const ns of namespaces) {
          const verified = new Map<number, VerifiedEpoch>();
          const result = await auditNamespace(witness, ns.namespace, {
            ...(pinned ? { witnessKey: pinned } : {}),
            store,
            onVerifiedEpoch: (v) => verified.set(v.epoch, v),
          });
          allOk &&= result.ok;
          out.append(await namespaceView(witness, result, verified, pinned));
        }
        status.textContent = allOk ? `Every epoch of ${namespaces.length} namespace(s) verified.` : 'Some checks FAILED: see the marked epochs below.';
      } catch (e) {
        status.textContent = '';
        showError(`${(e as Error).message}. Check the witness URL and key, then try again.`);
      } finally {
        btn.disabled = false;
      }
    })();
  });

  const bundleForm = document.getElementById('bundle-form') as HTMLFormElement;
  bundleForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    showError(null);
    out.replaceChildren();
    const text = (document.getElementById('bundle-text') as HTMLTextAreaElement).value.trim();
    if (!text) return showError('Paste a validation bundle (the JSON a gateway serves at /v1/fleet).');
    if (!bundleKey.value.trim()) return showError('Enter the witness key to check the bundle against.');
    void checkBundle(text, bundleKey.value.trim(), config).then((view) => {
      out.append(view);
      status.textContent = view.dataset.ok === 'true' ? 'The bundle verified.' : 'The bundle did NOT verify: see the failed check.';
    });
  });
}

async function namespaceView(witness: WitnessClient, r: AuditResult, verified: Map<number, VerifiedEpoch>, pinned: string): Promise<HTMLElement> {
  const section = h('section', { class: 'namespace', 'aria-label': `namespace ${r.namespace}` });
  section.append(
    h('h3', {}, `Namespace ${r.namespace}`),
    kv([
      ['witness', r.witness],
      ['checkpoint', `size ${r.checkpoint.size}, root ${r.checkpoint.rootHash}`],
    ]),
    h(
      'ul',
      { class: 'checks' },
      checkItem(
        r.consistency.ok,
        'Log consistency with the checkpoint seen before',
        r.consistency.error ?? (r.consistency.from !== undefined ? `tree ${r.consistency.from} → ${r.consistency.to}` : 'first visit: this checkpoint is now remembered'),
      ),
    ),
    verdict(r.ok, r.ok ? `All ${r.epochs.length} epochs verified` : 'AUDIT FAILED'),
  );
  const timeline = h('ol', { class: 'timeline', reversed: '' });
  for (const e of [...r.epochs].reverse()) timeline.append(h('li', {}, await epochView(witness, r.namespace, e, verified.get(e.epoch), pinned, r.checkpoint.size)));
  section.append(timeline);
  return section;
}

/** An epoch's card: only values the audit verified (the signed statement and what it covers). */
async function epochView(witness: WitnessClient, namespace: string, e: EpochAudit, v: VerifiedEpoch | undefined, pinned: string, treeSize: number): Promise<HTMLElement> {
  const ok = AUDIT_CHECKS.every((c) => e.checks[c].ok);
  const card = h('article', { class: 'epoch', 'data-epoch': String(e.epoch), 'data-ok': String(ok) });
  card.append(h('h4', {}, `Epoch ${e.epoch}${e.timestamp ? ` — ${new Date(e.timestamp).toISOString().slice(0, 19).replace('T', ' ')} UTC` : ''}`));
  card.append(h('p', {}, e.changes.join('; ') || ''));
  const checks = h('ul', { class: 'checks' });
  for (const c of AUDIT_CHECKS) checks.append(checkItem(e.checks[c].ok, CHECK_LABELS[c] ?? c, e.checks[c].error));
  card.append(checks);
  if (!v) {
    card.append(h('p', { class: 'hint' }, 'Details are shown only for an epoch that passed every check.'));
    return card;
  }
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const d = h('details', {}, h('summary', {}, 'Fleet artifact, signatures and proof'));
  d.append(
    artifactView(v.artifact),
    kv([
      ['digest', e.digest ?? ''],
      ['witness signature', encodeBase64(v.witnessSignature)],
      ['fleet counter-signature', encodeBase64(v.counterSignature)],
      ['log leaf', `${v.leafIndex} of a tree of ${treeSize}`],
      ['inclusion proof', v.inclusionProof.length === 0 ? '(none needed: the leaf is the whole tree)' : v.inclusionProof.map(hex).join(' ')],
    ]),
  );
  card.append(d);
  if (!v.evidence) {
    card.append(h('p', { class: 'hint' }, 'The witness reports no deployment evidence for this epoch.'));
    return card;
  }
  try {
    const ev = await witness.evidence(namespace, e.epoch);
    const audit = await auditDeployment(ev, { witness, ...(pinned ? { witnessKey: pinned } : {}), now: Date.now() });
    card.append(deploymentView(audit));
  } catch (err) {
    card.append(h('p', { class: 'fail' }, `Deployment evidence unavailable: ${(err as Error).message}`));
  }
  return card;
}

function deploymentView(a: DeploymentAudit): HTMLElement {
  const d = h('details', { class: 'deployment', open: '' }, h('summary', {}, `Deployment evidence: ${a.ok ? 'verified' : 'FAILED'}`));
  const ul = h('ul', { class: 'checks' });
  for (const c of a.checks) ul.append(checkItem(c.ok, c.name, c.detail));
  d.append(ul);
  return d;
}

/** Checks a pasted bundle; each check is shown passed, failed with its reason, or not reached. */
export async function checkBundle(text: string, witnessKey: string, _config: WebConfig): Promise<HTMLElement> {
  const box = h('section', { class: 'bundle-result', 'aria-label': 'bundle verification' });
  let namespace = '';
  let previous: SignedCheckpoint[] = [];
  try {
    const verifier = parseVerifierKey(witnessKey);
    try {
      namespace = String((JSON.parse(text) as { namespace?: unknown }).namespace ?? '');
    } catch {
      namespace = '';
    }
    const store = new LocalCheckpointStore('bkv-explorer:bundles:');
    const prevNote = await store.get(checkpointKey(verifier.name));
    if (prevNote) previous = [verifyCheckpoint(prevNote, verifier)];
    const v = verifyValidationBundle(text, { witnesses: [verifier], namespace, previousCheckpoints: previous, now: Date.now() });
    await store.set(checkpointKey(verifier.name), v.checkpoint.note);
    const ul = h('ul', { class: 'checks' });
    for (const c of BUNDLE_CHECKS) {
      const detail = c === 'consistency' && previous.length === 0 ? 'no earlier checkpoint seen in this browser' : c === 'rollback' ? 'no earlier epoch accepted in this browser' : undefined;
      ul.append(checkItem(true, CHECK_LABELS[c] ?? c, detail));
    }
    box.dataset.ok = 'true';
    box.append(h('h3', {}, `Bundle for ${v.namespace}, epoch ${v.epoch}`), verdict(true, 'Verified: a client would accept these fleet keys'), ul, artifactView(v.artifact));
  } catch (e) {
    const failed = ((e as { details?: { check?: string } }).details?.check ?? 'format') as string;
    const at = BUNDLE_CHECKS.indexOf(failed);
    const ul = h('ul', { class: 'checks' });
    BUNDLE_CHECKS.forEach((c, i) => ul.append(i < at ? checkItem(true, CHECK_LABELS[c] ?? c) : i === at ? checkItem(false, CHECK_LABELS[c] ?? c, (e as Error).message) : checkItem(null, CHECK_LABELS[c] ?? c)));
    if (at < 0) ul.prepend(checkItem(false, failed, (e as Error).message));
    box.dataset.ok = 'false';
    box.append(h('h3', {}, `Bundle${namespace ? ` for ${namespace}` : ''}`), verdict(false, 'REFUSED: a client would not accept these fleet keys'), ul);
  }
  return box;
}

