/**
 * Password backups in the web app share the key escrowed for the account (issue: every password
 * backup escrowed a new key over the old one, so earlier backups no longer restored, and restoring
 * one with its right password reported a wrong password and spent a guess). A second backup
 * reuses the key; a wrong password there registers nothing; only the explicit option replaces the
 * key, and a backup made with a replaced key is named as such at restore, without spending a guess.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { startHarness, type WebHarness } from './harness.js';

let h: WebHarness;
beforeAll(async () => {
  h = await startHarness('escrowed-key');
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const VAULT_TIMEOUT = 60_000;

/** Makes a password backup of one file; returns the error shown, or null and saves the backup to `out`. */
async function passwordBackup(page: Page, o: { account: string; password: string; data: Buffer; out: string; replace?: boolean }): Promise<string | null> {
  await page.goto(`${h.web.url}#backup`);
  await page.setInputFiles('#backup-files', [{ name: 'notes.txt', mimeType: 'text/plain', buffer: o.data }]);
  await page.check('#escrow-password');
  await page.fill('#backup-account', o.account);
  await page.fill('#backup-password', o.password);
  await page.fill('#backup-password2', o.password);
  if (o.replace) await page.check('#backup-replace-key');
  await page.click('#backup-go');
  await Promise.race([
    page.locator('#backup-result').waitFor({ state: 'visible', timeout: VAULT_TIMEOUT }),
    page.locator('#backup-error').waitFor({ state: 'visible', timeout: VAULT_TIMEOUT }),
  ]);
  if (await page.isVisible('#backup-error')) return page.textContent('#backup-error');
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#backup-download')]);
  await d.saveAs(o.out);
  return null;
}

/** Restores a backup with a password; returns the error shown, or the restored bytes. */
async function passwordRestore(page: Page, file: string, account: string, password: string): Promise<{ error: string } | { data: Buffer }> {
  await page.goto(`${h.web.url}#restore`);
  await page.setInputFiles('#restore-file', file);
  await page.check('#unlock-password');
  await page.fill('#restore-account', account);
  await page.fill('#restore-password', password);
  await page.click('#restore-go');
  await Promise.race([
    page.locator('#restore-result').waitFor({ state: 'visible', timeout: VAULT_TIMEOUT }),
    page.locator('#restore-error').waitFor({ state: 'visible', timeout: VAULT_TIMEOUT }),
  ]);
  if (await page.isVisible('#restore-error')) {
    expect(await page.locator('#restore-files a').count()).toBe(0);
    return { error: (await page.textContent('#restore-error'))! };
  }
  const to = `${file}.restored`;
  const [d] = await Promise.all([page.waitForEvent('download'), page.click('#restore-files a')]);
  await d.saveAs(to);
  return { data: await readFile(to) };
}

/** The key id in a backup's header (bytes 16–31), as hex. */
const keyIdOf = async (file: string) => (await readFile(file)).subarray(16, 32).toString('hex');

describe('password backups in the browser share the escrowed key', () => {
  it('a second password backup of the same account reuses the key, and both restore; a wrong password registers nothing', { timeout: 180_000 }, async () => {
    const page = await h.newPage();
    const monday = randomBytes(20_000);
    const tuesday = randomBytes(30_000);
    const first = join(h.dir, 'dave-monday.bkv');
    const second = join(h.dir, 'dave-tuesday.bkv');
    expect(await passwordBackup(page, { account: 'dave', password: 'first password here', data: monday, out: first })).toBeNull();
    expect(await page.textContent('#backup-status')).toMatch(/A new key was escrowed in the vault for account dave/);

    // A second backup with another password: the escrowed key is not replaced.
    const refused = await passwordBackup(page, { account: 'dave', password: 'not the password', data: tuesday, out: second });
    expect(refused).toMatch(/Wrong password: 9 attempts left/);
    expect(refused).toMatch(/Nothing was registered/);
    expect(refused).toMatch(/Replace the key escrowed for this account/);
    expect(await page.isVisible('#backup-result')).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('backup-password');
    await h.shot(page, 'second-backup-wrong-password');

    expect(await passwordBackup(page, { account: 'dave', password: 'first password here', data: tuesday, out: second })).toBeNull();
    const status = (await page.textContent('#backup-status'))!;
    expect(status).toMatch(/key already escrowed in the vault for account dave was reused/);
    await h.shot(page, 'second-backup-reused');
    expect(await keyIdOf(second)).toBe(await keyIdOf(first));
    expect(status).toContain(await keyIdOf(first));

    // Both backups restore with the password (the first one did not before the fix).
    const a = await passwordRestore(page, first, 'dave', 'first password here');
    expect(a).toEqual({ data: monday });
    const b = await passwordRestore(page, second, 'dave', 'first password here');
    expect(b).toEqual({ data: tuesday });
    await page.close();
  });

  it('after an explicit replace, an old backup is named as made with another key and no attempt is spent', { timeout: 180_000 }, async () => {
    const page = await h.newPage();
    const old = join(h.dir, 'erin-old.bkv');
    const fresh = join(h.dir, 'erin-new.bkv');
    const oldData = randomBytes(10_000);
    const newData = randomBytes(12_000);
    expect(await passwordBackup(page, { account: 'erin', password: 'old password 1', data: oldData, out: old })).toBeNull();

    // The option is off by default and labelled; ticking it escrows a new key over the old one.
    await page.goto(`${h.web.url}#backup`);
    await page.check('#escrow-password');
    expect(await page.isChecked('#backup-replace-key')).toBe(false);
    expect(await page.locator('label[for="backup-replace-key"]').textContent()).toBe('Replace the key escrowed for this account with a new one');
    await h.shot(page, 'backup-replace-option');
    expect(await passwordBackup(page, { account: 'erin', password: 'new password 2', data: newData, out: fresh, replace: true })).toBeNull();
    expect(await page.textContent('#backup-status')).toMatch(/replacing the earlier one: backups made before this one no longer open with a password/);
    expect(await page.isChecked('#backup-replace-key')).toBe(false); // the next backup reuses again
    expect(await keyIdOf(fresh)).not.toBe(await keyIdOf(old));

    // The old backup with its own (old) password, and with any other: the vault holds another key,
    // so it says so before counting a guess.
    for (const password of ['old password 1', 'new password 2', 'a guess']) {
      const r = await passwordRestore(page, old, 'erin', password);
      expect(r).toHaveProperty('error');
      const error = (r as { error: string }).error;
      expect(error).toMatch(/This backup was made with another key than the one the vault now holds for this account/);
      expect(error).toMatch(/No attempt was spent/);
      expect(error).toContain(await keyIdOf(old));
      expect(error).toContain(await keyIdOf(fresh));
      expect(error).not.toMatch(/Wrong password/);
    }
    await h.shot(page, 'restore-old-backup-key-mismatch');

    // The attempts counter is unchanged: the first wrong guess on the new key leaves 9 of 10.
    const wrong = await passwordRestore(page, fresh, 'erin', 'a guess');
    expect(wrong).toHaveProperty('error');
    expect((wrong as { error: string }).error).toMatch(/Wrong password: 9 attempts left/);
    expect(await passwordRestore(page, fresh, 'erin', 'new password 2')).toEqual({ data: newData });
    await page.close();
  });
});
