/**
 * Passkeys in Chromium through its virtual authenticator (CDP WebAuthn domain): escrow K under a
 * PRF-derived key, restore on this device and on a new one holding the synced passkey, and the
 * message and password fallback when the authenticator has no PRF.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { CDPSession, Page } from 'playwright-core';
import { startHarness, type WebHarness } from './harness.js';

let h: WebHarness;
beforeAll(async () => {
  h = await startHarness('passkey');
}, 120_000);
afterAll(async () => {
  await h?.close();
});

async function authenticator(page: Page, hasPrf: boolean): Promise<{ cdp: CDPSession; id: string }> {
  const cdp = await h.context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = (await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      ctap2Version: 'ctap2_1',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      hasPrf,
    },
  } as never)) as { authenticatorId: string };
  return { cdp, id: authenticatorId };
}

async function download(page: Page, selector: string, to: string): Promise<void> {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  await d.saveAs(to);
}

async function restoreWithPasskey(page: Page, bkvPath: string, account: string): Promise<void> {
  await page.goto(`${h.web.url}#restore`);
  await page.setInputFiles('#restore-file', bkvPath);
  await page.check('#unlock-passkey');
  await page.fill('#restore-account', account);
  await page.click('#restore-go');
  await Promise.race([
    page.locator('#restore-result').waitFor({ state: 'visible' }),
    page.locator('#restore-error').waitFor({ state: 'visible' }),
  ]);
}

describe('passkeys (Chromium virtual authenticator)', () => {
  it('escrows K under a passkey; the same PRF output twice; restores here and on a new device with the synced passkey', async () => {
    const page = await h.newPage();
    const a = await authenticator(page, true);
    const data = randomBytes(200_000);
    await page.goto(`${h.web.url}#backup`);
    await page.setInputFiles('#backup-files', [{ name: 'diary.txt', mimeType: 'text/plain', buffer: data }]);
    await page.check('#escrow-passkey');
    await page.fill('#backup-account', 'dave');
    await h.shot(page, 'backup-passkey-form');
    await page.click('#backup-go');
    await Promise.race([
      page.locator('#backup-result').waitFor({ state: 'visible' }),
      page.locator('#backup-error').waitFor({ state: 'visible' }),
    ]);
    expect(await page.isVisible('#backup-error'), (await page.textContent('#backup-error')) ?? '').toBe(false);
    expect(await page.textContent('#backup-status')).toMatch(/escrowed in the vault for account dave/);
    await h.shot(page, 'backup-passkey-done');
    const bkvPath = join(h.dir, 'diary.bkv');
    await download(page, '#backup-download', bkvPath);

    // The PRF is a function of the credential and the input: two assertions give the same output.
    const outputs = await page.evaluate(async () => {
      const input = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('bkv passkey prf input v1')));
      const once = async () => {
        const c = (await navigator.credentials.get({
          publicKey: { challenge: crypto.getRandomValues(new Uint8Array(32)), rpId: location.hostname, userVerification: 'required', extensions: { prf: { eval: { first: input } } } as never },
        })) as PublicKeyCredential;
        const r = (c.getClientExtensionResults() as { prf?: { results?: { first?: ArrayBuffer } } }).prf?.results?.first;
        return r ? Array.from(new Uint8Array(r)) : [];
      };
      return [await once(), await once()];
    });
    expect(outputs[0]!.length).toBe(32);
    expect(outputs[1]).toEqual(outputs[0]);

    await restoreWithPasskey(page, bkvPath, 'dave');
    expect(await page.isVisible('#restore-error'), (await page.textContent('#restore-error')) ?? '').toBe(false);
    await h.shot(page, 'restore-passkey-done');
    const restored = join(h.dir, 'diary-restored.txt');
    await download(page, '#restore-files a', restored);
    expect((await readFile(restored)).equals(data)).toBe(true);

    // A new device holding the synced passkey and nothing else. Chromium's virtual authenticator
    // cannot export a credential's PRF secret (WebAuthn.getCredentials has no such field), so the
    // synced passkey is this tab's authenticator, and the device is a fresh page load with every
    // bit of site data wiped: no key, no state, only the passkey and the .bkv file.
    await page.goto('about:blank');
    await a.cdp.send('Storage.clearDataForOrigin', { origin: h.web.origin, storageTypes: 'all' });
    await restoreWithPasskey(page, bkvPath, 'dave');
    expect(await page.isVisible('#restore-error'), (await page.textContent('#restore-error')) ?? '').toBe(false);
    const restored2 = join(h.dir, 'diary-device2.txt');
    await download(page, '#restore-files a', restored2);
    expect((await readFile(restored2)).equals(data)).toBe(true);

    // The same credential copied into another authenticator without its PRF secret: the app says
    // that this passkey cannot derive keys, and nothing is released.
    const { credentials } = (await a.cdp.send("WebAuthn.getCredentials", { authenticatorId: a.id })) as unknown as { credentials: Record<string, unknown>[] };
    expect(credentials).toHaveLength(1);
    const device2 = await h.newPage(390, 844);
    const b = await authenticator(device2, true);
    await b.cdp.send('WebAuthn.addCredential', { authenticatorId: b.id, credential: credentials[0] } as never);
    await restoreWithPasskey(device2, bkvPath, 'dave');
    expect(await device2.textContent('#restore-error')).toMatch(/PRF extension is missing.*restore with the recovery key or password/);
    expect(await device2.locator('#restore-files a').count()).toBe(0);
    await h.shot(device2, 'copied-credential-without-prf');

    // Dave's passkey used for another account: the vault holds nothing for that account and passkey.
    await restoreWithPasskey(page, bkvPath, 'mallory');
    expect(await page.textContent('#restore-error')).toMatch(/The vault holds no key for this account/);
    expect(await page.locator('#restore-files a').count()).toBe(0);
    await device2.close();
    await page.close();
  });

  it('without PRF the user is told why and offered the password instead', async () => {
    const page = await h.newPage();
    await authenticator(page, false);
    await page.goto(`${h.web.url}#backup`);
    await page.setInputFiles('#backup-files', [{ name: 'x.txt', mimeType: 'text/plain', buffer: Buffer.from('x') }]);
    await page.check('#escrow-passkey');
    await page.fill('#backup-account', 'erin');
    await page.click('#backup-go');
    await page.locator('#backup-error').waitFor({ state: 'visible' });
    expect(await page.textContent('#backup-error')).toMatch(/PRF extension is missing.*Choose a password instead/);
    expect(await page.isChecked('#escrow-password')).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('backup-password');
    expect(await page.isVisible('#backup-result')).toBe(false);
    await h.shot(page, 'no-prf');
    await page.close();
  });
});
