/** The bkv web app: backup, restore and the audit explorer. Runs entirely in the browser. */
import { BkvError } from '../shared/errors.js';
import { generateBackupKey } from '../client/keys/backup-key.js';
import { decodeRecoveryKey, encodeRecoveryKey } from '../client/keys/recovery-key.js';
import { backupToBlob, pathInFolder, restoreFromBlob, type SourceFile } from './backup-core.js';
import { initExplorer } from './explorer.js';
import { passkeyEscrow, passkeyRecover, prfSupportMessage } from './passkey.js';
import type { WebConfig } from './vault-config.js';
import type { WorkerReply, WorkerRequest } from './vault-worker.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

let config: WebConfig = {};
const configReady = fetch('config.json')
  .then((r) => (r.ok ? r.json() : {}))
  .then((c: WebConfig) => (config = c))
  .catch(() => config);

// ---------------------------------------------------------------- navigation

const SECTIONS = ['backup', 'restore', 'audit'] as const;
function show(name: string, focus: boolean): void {
  const target = (SECTIONS as readonly string[]).includes(name) ? name : 'backup';
  for (const s of SECTIONS) {
    $(s).hidden = s !== target;
    const link = $(`nav-${s}`);
    if (s === target) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (focus) $(`${target}-title`).focus();
}
for (const s of SECTIONS) $(`${s}-title`).tabIndex = -1;
window.addEventListener('hashchange', () => show(location.hash.slice(1), true));
show(location.hash.slice(1), false);

// ---------------------------------------------------------------- helpers

const ACCOUNT_RE = /^[A-Za-z0-9._@+-]{1,128}$/;

function setError(id: string, message: string | null): void {
  const el = $(id);
  el.hidden = message === null;
  el.textContent = message ?? '';
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A message that says what happened and what to do next. */
export function explain(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = (e as Error)?.message ?? String(e);
  const left = (e as { details?: { attemptsRemaining?: number }; attemptsRemaining?: number }).details?.attemptsRemaining ?? (e as { attemptsRemaining?: number }).attemptsRemaining;
  switch (code) {
    case 'WRONG_KEY':
      return 'This key does not open this backup. Check that you chose the right backup file, and the key or account you made it with.';
    case 'BAD_RECOVERY_KEY':
      return `${msg.charAt(0).toUpperCase()}${msg.slice(1)}. Check the recovery key as you wrote it down and type it again.`;
    case 'NOT_A_BACKUP':
      return 'This file is not a bkv backup. Choose the .bkv file you downloaded when you made the backup.';
    case 'UNSUPPORTED_VERSION':
      return `${msg}. Use a newer version of bkv to restore it.`;
    case 'TAMPERED':
    case 'TRUNCATED':
    case 'TRAILING_DATA':
      return `This backup file is damaged or was altered (${msg}). Nothing was restored. Use another copy of the backup.`;
    case 'BAD_ARCHIVE':
      return `This backup opened with your key, but the folder inside it cannot be restored safely (${msg}). Nothing was restored.`;
    case 'WRONG_PASSWORD':
      return `Wrong password: ${left ?? 'few'} attempt${left === 1 ? '' : 's'} left before the key is destroyed for good. Check the account name and the password, then try again.`;
    case 'LOCKED':
      return 'No attempts remain: the vault destroyed the escrowed key. The backup can only be opened with its recovery key, if one was written down.';
    case 'NOT_REGISTERED':
      return 'The vault holds no key for this account. Check the account name, or use the recovery key.';
    case 'NETWORK':
    case 'UNAVAILABLE':
    case 'RATE_LIMITED':
      return `The vault could not be reached (${msg}). Check your connection and try again in a minute.`;
    case 'VERIFICATION_FAILED':
    case 'FLEET_KEY_MISMATCH':
      return `The vault's keys did not verify (${msg}). Do not continue; tell the service's operator.`;
    case 'IO':
      return `A file could not be read (${msg}). Choose it again and retry.`;
    default:
      return msg;
  }
}

// Password escrow: OPAQUE and Argon2id run in a Web Worker.
let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, (r: WorkerReply) => void>();
type WorkerCall = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id' | 'config'> : never) : never;
function vaultCall(req: WorkerCall): Promise<WorkerReply> {
  worker ??= (() => {
    const w = new Worker(new URL('vault-worker.js', import.meta.url), { type: 'module' });
    w.onmessage = (ev: MessageEvent<WorkerReply>) => {
      pending.get(ev.data.id)?.(ev.data);
      pending.delete(ev.data.id);
    };
    return w;
  })();
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker!.postMessage({ ...req, id, config } as WorkerRequest);
  });
}

function workerError(r: Extract<WorkerReply, { ok: false }>): BkvError {
  return new BkvError(r.code as never, r.message, r.attemptsRemaining !== undefined ? { attemptsRemaining: r.attemptsRemaining } : {});
}

function toggleFields(root: HTMLElement, method: string): void {
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('.needs-account'))) el.hidden = method === 'recovery';
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('.needs-password'))) el.hidden = method !== 'password';
  for (const el of Array.from(root.querySelectorAll<HTMLElement>('.needs-recovery'))) el.hidden = method !== 'recovery';
}

function checkedValue(name: string): string {
  return (document.querySelector<HTMLInputElement>(`input[name="${name}"]:checked`)?.value ?? 'recovery');
}

function progressReporter(boxId: string, barId: string, statusId: string, verb: string) {
  const bar = $<HTMLProgressElement>(barId);
  let last = 0;
  return {
    start() {
      $(boxId).hidden = false;
      bar.value = 0;
    },
    update(done: number, total: number) {
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      bar.value = total > 0 ? done / total : 1;
      $(statusId).textContent = `${verb} ${formatBytes(done)} of ${formatBytes(total)}…`;
    },
    stop() {
      $(boxId).hidden = true;
    },
  };
}

// ---------------------------------------------------------------- backup

let chosen: SourceFile[] = [];
let chosenFolder = false;
const backupForm = $<HTMLFormElement>('backup-form');
const filesInput = $<HTMLInputElement>('backup-files');
const folderInput = $<HTMLInputElement>('backup-folder');

function describeSelection(): void {
  const total = chosen.reduce((n, f) => n + f.file.size, 0);
  $('backup-selection').textContent =
    chosen.length === 0
      ? 'Nothing chosen yet.'
      : `${chosenFolder ? 'Folder with ' : ''}${chosen.length} file${chosen.length === 1 ? '' : 's'}, ${formatBytes(total)}.`;
}
filesInput.addEventListener('change', () => {
  chosen = Array.from(filesInput.files ?? []).map((f) => ({ path: f.name, file: f, mtimeMs: f.lastModified }));
  chosenFolder = false;
  folderInput.value = '';
  describeSelection();
});
folderInput.addEventListener('change', () => {
  chosen = Array.from(folderInput.files ?? []).map((f) => ({ path: pathInFolder(f), file: f, mtimeMs: f.lastModified }));
  chosenFolder = true;
  filesInput.value = '';
  describeSelection();
});
for (const r of Array.from(document.querySelectorAll<HTMLInputElement>('input[name="escrow"]'))) {
  r.addEventListener('change', () => toggleFields($('backup'), checkedValue('escrow')));
}
toggleFields($('backup'), checkedValue('escrow'));

// The File System Access API, where present, streams the backup straight into a file.
type SaveHandle = { createWritable(): Promise<{ write(d: Uint8Array): Promise<void>; close(): Promise<void>; abort(): Promise<void> }>; name: string };
const savePicker = (window as unknown as { showSaveFilePicker?: (o: unknown) => Promise<SaveHandle> }).showSaveFilePicker;
if (savePicker) $('direct-save-box').hidden = false;

let lastDownloadUrl: string | null = null;
backupForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void runBackup();
});

async function runBackup(): Promise<void> {
  setError('backup-error', null);
  $('recovery-box').hidden = true;
  $('backup-result').hidden = true;
  $('backup-status').textContent = '';
  const method = checkedValue('escrow');
  if (chosen.length === 0) return fail('Choose one or more files, or a folder, to back up.', filesInput);
  const account = $<HTMLInputElement>('backup-account').value.trim();
  const password = $<HTMLInputElement>('backup-password').value;
  if (method !== 'recovery' && !ACCOUNT_RE.test(account)) {
    return fail('Enter an account name: 1 to 128 letters, digits or . _ @ + -', $('backup-account'));
  }
  if (method === 'password') {
    if (password.length < 8) return fail('Choose a password of at least 8 characters.', $('backup-password'));
    if (password !== $<HTMLInputElement>('backup-password2').value) return fail('The two passwords differ. Type the same password twice.', $('backup-password2'));
  }
  const button = $<HTMLButtonElement>('backup-go');
  const base = chosenFolder ? (((chosen[0]!.file as File).webkitRelativePath ?? '').split('/')[0] || 'folder') : chosen.length === 1 ? chosen[0]!.path : 'files';
  let target: Awaited<ReturnType<SaveHandle['createWritable']>> | null = null;
  let targetName = '';
  if (savePicker && $<HTMLInputElement>('direct-save').checked) {
    try {
      const handle = await savePicker({ suggestedName: `${base}.bkv`, types: [{ description: 'bkv backup', accept: { 'application/vnd.bkv.backup': ['.bkv'] } }] });
      target = await handle.createWritable();
      targetName = handle.name;
    } catch {
      return fail('No file was chosen to save the backup in. Choose one, or untick "Write the backup straight to a file".', $('direct-save'));
    }
  }
  button.disabled = true;
  const progress = progressReporter('backup-progress-box', 'backup-progress', 'backup-status', 'Encrypted');
  try {
    await configReady;
    const key = generateBackupKey();
    // Escrow first: a backup whose key could not be kept is of no use.
    if (method === 'password') {
      $('backup-status').textContent = 'Escrowing the key in the vault (stretching the password in the background)…';
      const r = await vaultCall({ op: 'register', account, password, key });
      if (!r.ok) throw workerError(r);
    } else if (method === 'passkey') {
      $('backup-status').textContent = 'Creating a passkey and escrowing the key in the vault…';
      await passkeyEscrow(config, account, key);
    }
    progress.start();
    const writer = target;
    const out = await backupToBlob(chosen, key, {
      asArchive: chosenFolder,
      onProgress: (d, t) => progress.update(d, t),
      ...(writer ? { sink: (p: Uint8Array) => writer.write(p) } : {}),
    });
    if (writer) await writer.close();
    target = null;
    progress.stop();
    const link = $<HTMLAnchorElement>('backup-download');
    if (writer) {
      link.hidden = true;
      $('backup-size').textContent = `Saved as ${targetName}.`;
    } else {
      if (lastDownloadUrl) URL.revokeObjectURL(lastDownloadUrl);
      lastDownloadUrl = URL.createObjectURL(out.blob);
      link.hidden = false;
      link.href = lastDownloadUrl;
      link.download = `${base}.bkv`;
      $('backup-size').textContent = `${link.download}, ${formatBytes(out.blob.size)}`;
    }
    $('backup-result').hidden = false;
    if (method === 'recovery') {
      $('recovery-key').textContent = encodeRecoveryKey(key);
      $('recovery-copied').textContent = '';
      $('recovery-box').hidden = false;
    }
    $('backup-status').textContent =
      `Encrypted ${formatBytes(out.bytes)} (${out.kind === 'tar' ? 'archive' : 'one file'}). ` +
      (method === 'recovery' ? 'Save the recovery key below, then download the backup.' : `The key is escrowed in the vault for account ${account}.`);
    link.focus();
    key.fill(0);
  } catch (e) {
    progress.stop();
    await target?.abort().catch(() => undefined);
    $('backup-status').textContent = '';
    setError('backup-error', explain(e));
    if ((e as BkvError).details?.noPrf) {
      // No PRF here: offer the password path instead.
      $<HTMLInputElement>('escrow-password').checked = true;
      toggleFields($('backup'), 'password');
      $('backup-password').focus();
    }
  } finally {
    button.disabled = false;
  }
}

function fail(message: string, focus?: HTMLElement): void {
  setError(focus?.closest('#restore') ? 'restore-error' : 'backup-error', message);
  focus?.focus();
}

$('recovery-copy').addEventListener('click', () => {
  const text = $('recovery-key').textContent ?? '';
  navigator.clipboard
    .writeText(text)
    .then(() => ($('recovery-copied').textContent = 'Copied.'))
    .catch(() => ($('recovery-copied').textContent = 'Could not copy: select the key and copy it by hand.'));
});

// ---------------------------------------------------------------- restore

for (const r of Array.from(document.querySelectorAll<HTMLInputElement>('input[name="unlock"]'))) {
  r.addEventListener('change', () => toggleFields($('restore'), checkedValue('unlock')));
}
toggleFields($('restore'), checkedValue('unlock'));
$<HTMLFormElement>('restore-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void runRestore();
});
const restoreUrls: string[] = [];

async function runRestore(): Promise<void> {
  setError('restore-error', null);
  $('restore-result').hidden = true;
  $('restore-status').textContent = '';
  for (const u of restoreUrls.splice(0)) URL.revokeObjectURL(u);
  $('restore-files').replaceChildren();
  const file = $<HTMLInputElement>('restore-file').files?.[0];
  if (!file) return fail('Choose the backup file (.bkv) to restore.', $('restore-file'));
  const method = checkedValue('unlock');
  const account = $<HTMLInputElement>('restore-account').value.trim();
  if (method !== 'recovery' && !ACCOUNT_RE.test(account)) {
    return fail('Enter the account name you made the backup with.', $('restore-account'));
  }
  const password = $<HTMLInputElement>('restore-password').value;
  if (method === 'password' && password.length === 0) return fail('Enter the password.', $('restore-password'));
  const button = $<HTMLButtonElement>('restore-go');
  button.disabled = true;
  const progress = progressReporter('restore-progress-box', 'restore-progress', 'restore-status', 'Checked');
  try {
    await configReady;
    let key: Uint8Array;
    if (method === 'recovery') {
      key = decodeRecoveryKey($<HTMLTextAreaElement>('restore-recovery-key').value);
    } else if (method === 'password') {
      $('restore-status').textContent = 'Asking the vault (stretching the password in the background)…';
      const r = await vaultCall({ op: 'recover', account, password });
      if (!r.ok) throw workerError(r);
      key = r.key!;
    } else {
      $('restore-status').textContent = 'Unlocking with your passkey…';
      key = await passkeyRecover(config, account);
    }
    progress.start();
    const name = file.name.replace(/\.bkv$/i, '') || 'restored';
    const out = await restoreFromBlob(file, key, { defaultName: name, onProgress: (d, t) => progress.update(d, t) });
    progress.stop();
    key.fill(0);
    const list = $('restore-files');
    for (const f of out.files) {
      const url = URL.createObjectURL(f.blob);
      restoreUrls.push(url);
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = url;
      a.download = f.path.split('/').pop() ?? f.path;
      a.textContent = `Download ${f.path}`;
      a.className = 'restored-file';
      li.append(a, document.createTextNode(` (${formatBytes(f.blob.size)})`));
      list.append(li);
    }
    $('restore-result').hidden = false;
    $('restore-status').textContent = `Restored ${out.files.length} file${out.files.length === 1 ? '' : 's'}; the backup verified completely.`;
    list.querySelector('a')?.focus();
  } catch (e) {
    progress.stop();
    $('restore-status').textContent = '';
    setError('restore-error', explain(e));
    if ((e as BkvError).code === 'BAD_RECOVERY_KEY') $('restore-recovery-key').focus();
    if ((e as BkvError).code === 'WRONG_PASSWORD') $('restore-password').focus();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- passkey support notice

void prfSupportMessage().then((m) => {
  if (!m) return;
  for (const id of ['escrow-passkey', 'unlock-passkey']) {
    const label = document.querySelector(`label[for="${id}"]`);
    if (label) label.textContent += ` — ${m}`;
  }
});

void configReady.then(() => initExplorer(config));
