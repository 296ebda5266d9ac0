/**
 * The web app in Chromium: backup and restore with a recovery key and with a password, the CLI
 * restoring a browser backup and the browser restoring a CLI backup, a tampered backup refused
 * with no download offered, and the layout at phone width.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { encodeRecoveryKey } from '../../src/client/keys/recovery-key.js';
import { startHarness, type WebHarness } from './harness.js';

const run = promisify(execFile);

async function bkv(args: string[], stdin?: string): Promise<{ stdout: string; stderr: string }> {
  const child = execFile(process.execPath, ['bin/bkv.js', ...args], { env: { ...process.env, BKV_NO_PROGRESS: '1' } });
  if (stdin !== undefined) child.stdin!.end(stdin);
  else child.stdin!.end();
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  if (code !== 0) throw new Error(`bkv ${args.join(' ')} exited ${code}: ${stderr}`);
  return { stdout, stderr };
}
void run;

let h: WebHarness;
beforeAll(async () => {
  h = await startHarness('backup-restore');
}, 120_000);
afterAll(async () => {
  await h?.close();
});

async function download(page: Page, selector: string, to: string): Promise<string> {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  await d.saveAs(to);
  return d.suggestedFilename();
}

async function backupInBrowser(page: Page, files: { name: string; buffer: Buffer }[], out: string): Promise<string> {
  await page.goto(`${h.web.url}#backup`);
  await page.setInputFiles('#backup-files', files.map((f) => ({ ...f, mimeType: 'application/octet-stream' })));
  await page.check('#escrow-recovery');
  await page.click('#backup-go');
  await page.locator('#backup-result').waitFor({ state: 'visible' });
  const key = (await page.textContent('#recovery-key'))!.trim();
  await download(page, '#backup-download', out);
  return key;
}

async function restoreInBrowser(page: Page, bkvPath: string, recoveryKey: string, timeout = 30_000): Promise<void> {
  await page.goto(`${h.web.url}#restore`);
  await page.setInputFiles('#restore-file', bkvPath);
  await page.check('#unlock-recovery');
  await page.fill('#restore-recovery-key', recoveryKey);
  await page.click('#restore-go');
  await Promise.race([
    page.locator('#restore-result').waitFor({ state: 'visible', timeout }),
    page.locator('#restore-error').waitFor({ state: 'visible', timeout }),
  ]);
}

describe('web app backup and restore (Chromium)', () => {
  it('backs up a file with a recovery key, restores it in the browser and with the CLI', async () => {
    const page = await h.newPage();
    const data = randomBytes(3 * 1024 * 1024 + 123); // several 1 MiB chunks
    const bkvPath = join(h.dir, 'browser.bkv');
    const key = await backupInBrowser(page, [{ name: 'photo.raw', buffer: data }], bkvPath);
    expect(key).toMatch(/^([0-9A-Z]{4}-){15}[0-9A-Z]{4}$/);
    expect(await page.isVisible('#recovery-copy')).toBe(true);
    await h.shot(page, 'backup-done-recovery-key');
    const backup = await readFile(bkvPath);
    expect(backup.subarray(0, 8).toString('latin1')).toBe('BKVBACK\n');
    expect(backup.length).toBe(64 + data.length + 16 * 4);

    // The CLI restores the browser's backup.
    const cliOut = join(h.dir, 'cli-restored.raw');
    await bkv(['backup', 'restore', bkvPath, '-o', cliOut, '--recovery-key-stdin'], key + '\n');
    expect((await readFile(cliOut)).equals(data)).toBe(true);

    // And the browser restores it too.
    await restoreInBrowser(page, bkvPath, key);
    await h.shot(page, 'restore-done');
    expect(await page.isVisible('#restore-error')).toBe(false);
    const restored = join(h.dir, 'browser-restored.raw');
    const name = await download(page, '#restore-files a', restored);
    expect(name).toBe('browser');
    expect((await readFile(restored)).equals(data)).toBe(true);
    await page.close();
  });

  it('restores a backup of a folder made by the CLI, and the CLI restores a browser backup of several files', async () => {
    const page = await h.newPage();
    const src = join(h.dir, 'chats');
    await mkdir(join(src, 'media'), { recursive: true });
    const tree: Record<string, Buffer> = { 'chat.txt': Buffer.from('hello from the CLI\n'), 'media/pic.jpg': randomBytes(200_000) };
    for (const [p, d] of Object.entries(tree)) await writeFile(join(src, p), d);
    const keyBytes = new Uint8Array(randomBytes(32));
    const recovery = encodeRecoveryKey(keyBytes);
    const cliBkv = join(h.dir, 'cli-chats.bkv');
    await bkv(['backup', 'create', src, '-o', cliBkv, '--recovery-key-stdin'], recovery + '\n');
    await restoreInBrowser(page, cliBkv, recovery);
    await h.shot(page, 'restore-cli-folder');
    const links = page.locator('#restore-files a');
    expect(await links.count()).toBe(2);
    const got: Record<string, Buffer> = {};
    for (let i = 0; i < 2; i++) {
      const label = (await links.nth(i).textContent())!.replace(/^Download /, '');
      const to = join(h.dir, `dl-${i}`);
      const [d] = await Promise.all([page.waitForEvent('download'), links.nth(i).click()]);
      await d.saveAs(to);
      got[label] = await readFile(to);
    }
    expect(got).toEqual(tree);

    // Several files chosen in the browser: an archive the CLI restores as a directory.
    const a = randomBytes(5000);
    const b = Buffer.from('second file');
    const multi = join(h.dir, 'multi.bkv');
    const key = await backupInBrowser(page, [{ name: 'a.bin', buffer: a }, { name: 'b.txt', buffer: b }], multi);
    const outDir = join(h.dir, 'multi-restored');
    await bkv(['backup', 'restore', multi, '-o', outDir, '--recovery-key-stdin'], key + '\n');
    expect((await readdir(outDir)).sort()).toEqual(['a.bin', 'b.txt']);
    expect((await readFile(join(outDir, 'a.bin'))).equals(a)).toBe(true);
    expect((await readFile(join(outDir, 'b.txt'))).equals(b)).toBe(true);
    await page.close();
  });

  it('backs up a folder chosen in the browser; the CLI restores the same tree', async () => {
    const page = await h.newPage();
    const src = join(h.dir, 'album');
    await mkdir(join(src, 'day1'), { recursive: true });
    const tree: Record<string, Buffer> = { 'index.txt': Buffer.from('album'), 'day1/a.jpg': randomBytes(70_000) };
    for (const [p, d] of Object.entries(tree)) await writeFile(join(src, p), d);
    await page.goto(`${h.web.url}#backup`);
    await page.setInputFiles('#backup-folder', src);
    await page.waitForFunction(() => document.getElementById('backup-selection')!.textContent!.includes('2 files'));
    await page.click('#backup-go');
    await page.locator('#backup-result').waitFor({ state: 'visible' });
    const key = (await page.textContent('#recovery-key'))!.trim();
    const out = join(h.dir, 'album.bkv');
    expect(await download(page, '#backup-download', out)).toBe('album.bkv');
    const restored = join(h.dir, 'album-restored');
    await bkv(['backup', 'restore', out, '-o', restored, '--recovery-key-stdin'], key + '\n');
    for (const [p, d] of Object.entries(tree)) expect((await readFile(join(restored, p))).equals(d)).toBe(true);
    await page.close();
  });

  it('streams a large file: the page heap stays far below its size, both ways', { timeout: 180_000 }, async () => {
    const page = await h.newPage();
    const cdp = await h.context.newCDPSession(page);
    const size = 96 * 1024 * 1024 + 5;
    const big = join(h.dir, 'video.mp4');
    const data = randomBytes(size);
    await writeFile(big, data);
    const digest = createHash('sha256').update(data).digest('hex');
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
        // What the page still holds (garbage collected first, so lazily freed buffers do not
        // count): JS heap plus the backing stores of ArrayBuffers, where file pieces and chunks live.
        await cdp.send('HeapProfiler.collectGarbage');
        const u = await cdp.send('Runtime.getHeapUsage');
        peak = Math.max(peak, u.usedSize + u.embedderHeapUsedSize + u.backingStorageSize);
        } catch {
          return; // the page is gone (the test failed elsewhere)
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    await page.goto(`${h.web.url}#backup`);
    await page.setInputFiles('#backup-files', big);
    await page.check('#escrow-recovery');
    await page.click('#backup-go');
    await page.waitForFunction(() => (document.getElementById('backup-progress') as HTMLProgressElement).value > 0.2, undefined, { timeout: 60_000 });
    await h.shot(page, 'backup-progress');
    await page.locator('#backup-result').waitFor({ state: 'visible', timeout: 120_000 });
    const key = (await page.textContent('#recovery-key'))!.trim();
    const out = join(h.dir, 'video.bkv');
    await download(page, '#backup-download', out);
    const backupPeak = peak;
    peak = 0;
    await restoreInBrowser(page, out, key, 120_000);
    expect(await page.isVisible('#restore-error')).toBe(false);
    const restorePeak = peak;
    sampling = false;
    await sampler;
    // Whatever the browser keeps in its Blob store (on disk when large), the page never holds
    // the file, the backup or the restored file whole: what it retains stays under a third of it.
    expect(backupPeak).toBeLessThan(size / 3);
    expect(restorePeak).toBeLessThan(size / 3);
    process.stdout.write(`page heap peak: backup ${(backupPeak / 2 ** 20).toFixed(1)} MiB, restore ${(restorePeak / 2 ** 20).toFixed(1)} MiB for a ${(size / 2 ** 20).toFixed(0)} MiB file\n`);
    const cliOut = join(h.dir, 'video-cli.mp4');
    await bkv(['backup', 'restore', out, '-o', cliOut, '--recovery-key-stdin'], key + '\n');
    expect(createHash('sha256').update(await readFile(cliOut)).digest('hex')).toBe(digest);
    await page.close();
  });

  it('refuses a tampered backup with a clear error and offers no download', async () => {
    const page = await h.newPage();
    const data = randomBytes(100_000);
    const good = join(h.dir, 'good.bkv');
    const key = await backupInBrowser(page, [{ name: 'doc.pdf', buffer: data }], good);
    const bytes = await readFile(good);
    bytes[64 + 500] = bytes[64 + 500]! ^ 0x01; // the attacker flips one ciphertext bit
    const bad = join(h.dir, 'tampered.bkv');
    await writeFile(bad, bytes);
    await restoreInBrowser(page, bad, key);
    await h.shot(page, 'restore-tampered');
    const error = await page.textContent('#restore-error');
    expect(error).toMatch(/damaged or was altered/);
    expect(error).toMatch(/Nothing was restored/);
    expect(await page.isVisible('#restore-result')).toBe(false);
    expect(await page.locator('#restore-files a').count()).toBe(0);

    // A wrong recovery key (valid checksum, other key) is named as such.
    await restoreInBrowser(page, good, encodeRecoveryKey(new Uint8Array(32).fill(9)));
    expect(await page.textContent('#restore-error')).toMatch(/does not open this backup/);
    // A typo in the recovery key is caught before any decryption.
    await restoreInBrowser(page, good, key.slice(0, -1) + (key.endsWith('0') ? '1' : '0'));
    expect(await page.textContent('#restore-error')).toMatch(/recovery key/i);
    await h.shot(page, 'restore-typo');
    await page.close();
  });

  it('escrows the key under a password; a wrong password shows the attempts left; the right one restores', async () => {
    const page = await h.newPage();
    const data = randomBytes(50_000);
    await page.goto(`${h.web.url}#backup`);
    await page.setInputFiles('#backup-files', [{ name: 'notes.txt', mimeType: 'text/plain', buffer: data }]);
    await page.check('#escrow-password');
    await page.fill('#backup-account', 'carol');
    await page.fill('#backup-password', 'correct horse battery staple');
    await page.fill('#backup-password2', 'correct horse battery staple');
    // The page stays responsive while Argon2id runs in the worker: a timer keeps ticking.
    await page.evaluate(() => {
      (window as unknown as { ticks: number }).ticks = 0;
      setInterval(() => (window as unknown as { ticks: number }).ticks++, 50);
    });
    const t0 = Date.now();
    await page.click('#backup-go');
    await page.locator('#backup-result').waitFor({ state: 'visible', timeout: 60_000 });
    const elapsed = Date.now() - t0;
    const ticks = await page.evaluate(() => (window as unknown as { ticks: number }).ticks);
    expect(ticks).toBeGreaterThan((elapsed / 50) * 0.5);
    expect(await page.isVisible('#recovery-box')).toBe(false);
    await h.shot(page, 'backup-password-done');
    const out = join(h.dir, 'notes.bkv');
    await download(page, '#backup-download', out);

    await page.goto(`${h.web.url}#restore`);
    await page.setInputFiles('#restore-file', out);
    await page.check('#unlock-password');
    await page.fill('#restore-account', 'carol');
    await page.fill('#restore-password', 'correct horse battery stapler');
    await page.click('#restore-go');
    await page.locator('#restore-error').waitFor({ state: 'visible', timeout: 60_000 });
    expect(await page.textContent('#restore-error')).toMatch(/Wrong password: 9 attempts left/);
    await h.shot(page, 'restore-wrong-password');
    expect(await page.locator('#restore-files a').count()).toBe(0);

    await page.fill('#restore-password', 'correct horse battery staple');
    await page.click('#restore-go');
    await page.locator('#restore-result').waitFor({ state: 'visible', timeout: 60_000 });
    const restored = join(h.dir, 'notes-restored.txt');
    await download(page, '#restore-files a', restored);
    expect((await readFile(restored)).equals(data)).toBe(true);
    await page.close();
  });

  it('works at phone width without sideways scrolling, and by keyboard', async () => {
    const page = await h.newPage(390, 844);
    for (const section of ['backup', 'restore', 'audit']) {
      await page.goto(`${h.web.url}#${section}`);
      await page.check(section === 'backup' ? '#escrow-password' : section === 'restore' ? '#unlock-password' : '#audit-witness').catch(() => undefined);
      const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
      expect(scroll, `${section} overflows sideways`).toBeLessThanOrEqual(client);
      await h.shot(page, `phone-${section}`);
    }
    // Every form control has a label.
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll('input, textarea, select'))
        .filter((el) => (el as HTMLInputElement).labels?.length === 0 && !el.getAttribute('aria-label'))
        .map((el) => el.id),
    );
    expect(unlabelled).toEqual([]);
    // Keyboard only: Tab from the top reaches the navigation, Enter switches section.
    await page.goto('about:blank');
    await page.goto(h.web.url);
    await page.keyboard.press('Tab'); // skip link
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('nav-restore');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('restore')!.hidden);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('restore-title');
    // Submitting with nothing chosen says what to do and moves focus to the missing field.
    await page.keyboard.press('Tab');
    await page.locator('#restore-go').focus();
    await page.keyboard.press('Enter');
    expect(await page.textContent('#restore-error')).toMatch(/Choose the backup file/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('restore-file');
    await h.shot(page, 'phone-restore-error');
    await page.close();
  });
});
