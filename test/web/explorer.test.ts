/**
 * The audit explorer in Chromium: the witness log as a timeline, each epoch's checks passed, and a
 * pasted validation bundle verified, then refused once an attacker alters it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { publishDeployment } from '../../src/ceremony/publish.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness } from '../../src/witness/server.js';
import { cleanup, deploy, tempDir } from '../ceremony/fixture.js';
import { startHarness, type WebHarness } from './harness.js';
import { rewriteJson, startTamperProxy } from '../witness/tamper-proxy.js';

let h: WebHarness;
beforeAll(async () => {
  h = await startHarness('explorer');
}, 120_000);
afterAll(async () => {
  await h?.close();
});

async function gatewayBundle(): Promise<Record<string, unknown>> {
  const res = await fetch(`${h.stack.gatewayUrl}/v1/fleet?knownTreeSize=0`);
  return ((await res.json()) as { bundle: Record<string, unknown> }).bundle;
}

describe('audit explorer (Chromium)', () => {
  it('shows the namespaces and epochs of the witness log, every check passed', async () => {
    const page = await h.newPage();
    await page.goto(`${h.web.url}#audit`);
    await page.click('#audit-go');
    await page.locator('article.epoch').first().waitFor({ state: 'visible' });
    await page.waitForFunction(() => /verified|FAILED/.test(document.getElementById('audit-status')!.textContent ?? ''));
    expect(await page.textContent('#audit-status')).toMatch(/Every epoch of 1 namespace\(s\) verified/);
    expect(await page.textContent('section.namespace h3')).toBe(`Namespace ${h.stack.namespace}`);
    const epoch = page.locator('article.epoch[data-epoch="1"]');
    expect(await epoch.getAttribute('data-ok')).toBe('true');
    const checks = await epoch.locator('.checks li').allTextContents();
    expect(checks.filter((c) => c.includes(': passed'))).toHaveLength(4);
    expect(checks.join('\n')).toMatch(/Inclusion proof: the statement is in the signed log: passed/);
    expect(checks.join('\n')).toMatch(/Fleet counter-signature over the witness signature: passed/);
    await epoch.locator('summary').first().click();
    await h.shot(page, 'explorer-timeline');
    // A second visit checks the log's consistency with the checkpoint this browser remembered.
    await page.reload();
    await page.click('#audit-go');
    await page.waitForFunction(() => /verified|FAILED/.test(document.getElementById('audit-status')!.textContent ?? ''));
    expect(await page.textContent('section.namespace .checks')).toMatch(/Log consistency with the checkpoint seen before: passed — tree \d+ → \d+/);
    // Opened on a witness URL typed in (another origin: the witness allows public reads), pinned key.
    await page.fill('#audit-witness', h.stack.witnessUrl);
    await page.fill('#audit-witness-key', h.stack.witnessKey);
    await page.click('#audit-go');
    await page.waitForFunction(() => /verified|FAILED|\./.test(document.getElementById('audit-status')!.textContent ?? '') && !document.getElementById('audit-status')!.textContent!.startsWith('Reading'));
    expect(await page.isVisible('#audit-error'), (await page.textContent('#audit-error')) ?? '').toBe(false);
    expect(await page.textContent('#audit-status')).toMatch(/Every epoch of 1 namespace\(s\) verified/);
    // Pinned to another key, the witness is refused.
    await page.fill('#audit-witness-key', 'other+12345678+AQID');
    await page.click('#audit-go');
    await page.locator('#audit-error').waitFor({ state: 'visible' });
    const phone = await h.newPage(390, 844);
    await phone.goto(`${h.web.url}#audit`);
    await phone.click('#audit-go');
    await phone.locator('article.epoch').first().waitFor({ state: 'visible' });
    await phone.locator('article.epoch summary').first().click();
    const { scroll, client } = await phone.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    expect(scroll).toBeLessThanOrEqual(client);
    await h.shot(phone, 'explorer-phone');
    await phone.close();
    await page.close();
  });

  it('verifies a pasted bundle and flags a tampered one with the failed check and its reason', async () => {
    const page = await h.newPage();
    const bundle = await gatewayBundle();
    await page.goto(`${h.web.url}#audit`);
    await page.click('#bundle-details summary');
    await page.fill('#bundle-text', JSON.stringify(bundle, null, 2));
    expect(await page.inputValue('#bundle-witness-key')).toBe(h.stack.witnessKey);
    await page.click('#bundle-go');
    await page.locator('.bundle-result').waitFor();
    expect(await page.getAttribute('.bundle-result', 'data-ok')).toBe('true');
    expect(await page.textContent('.bundle-result')).toMatch(/Verified: a client would accept these fleet keys/);
    await h.shot(page, 'bundle-ok');

    // The attacker swaps in another encryption key in the artifact: the digest no longer matches.
    const artifact = JSON.parse(Buffer.from(bundle.artifact as string, 'base64').toString('utf8')) as { keys: { role: string; publicKey: string }[] };
    const enc = artifact.keys.find((k) => k.role === 'encryption')!;
    enc.publicKey = Buffer.alloc(32, 7).toString('base64');
    const forged = { ...bundle, artifact: Buffer.from(JSON.stringify(artifact)).toString('base64') };
    await page.fill('#bundle-text', JSON.stringify(forged));
    await page.click('#bundle-go');
    await page.waitForFunction(() => document.querySelector('.bundle-result')?.getAttribute('data-ok') === 'false');
    const text = await page.textContent('.bundle-result');
    expect(text).toMatch(/REFUSED/);
    expect(await page.textContent('.bundle-result li.fail')).toMatch(/Artifact digest matches the witness statement: FAILED — .*does not match the digest/);
    await h.shot(page, 'bundle-tampered');

    // A forged witness signature is refused at the signature check.
    const sig = Buffer.from(bundle.witnessSignature as string, 'base64');
    sig[0]! ^= 1;
    await page.fill('#bundle-text', JSON.stringify({ ...bundle, witnessSignature: sig.toString('base64') }));
    await page.click('#bundle-go');
    await page.waitForFunction(() => document.querySelector('.bundle-result')?.getAttribute('data-ok') === 'false');
    expect(await page.textContent('.bundle-result li.fail')).toMatch(/Witness signature over the statement: FAILED/);
    await page.close();
  });

  it('attack: a proxy in front of the witness alters epoch records; the explorer never shows a forged value', async () => {
    const path = `/v1/namespaces/${h.stack.namespace}/epochs/1`;
    const truth = (await (await fetch(h.stack.witnessUrl + path)).json()) as { digest: string };
    const forged = 'f0'.repeat(32);
    const open = async (url: string) => {
      const page = await h.newPage();
      await page.goto(`${h.web.url}#audit`);
      await page.fill('#audit-witness', url);
      await page.fill('#audit-witness-key', h.stack.witnessKey);
      await page.click('#audit-go');
      await page.waitForFunction(() => !document.getElementById('audit-error')!.hidden || /verified|FAILED/.test(document.getElementById('audit-status')!.textContent ?? ''));
      return page;
    };
    // Every answer altered: the audit stops with the reason, and shows no epoch.
    const always = await startTamperProxy(h.stack.witnessUrl, rewriteJson(path, (j) => void (j.digest = forged)));
    try {
      const page = await open(always.url);
      expect(await page.textContent('#audit-error')).toMatch(/unsigned "digest" field differs from the signed statement/);
      expect(await page.content()).not.toContain(forged);
      await page.close();
    } finally {
      await always.close();
    }
    // Honest while audited, altered when fetched again: the details shown are still the verified ones.
    let seen = 0;
    const later = rewriteJson(path, (j) => void (j.digest = forged));
    const second = await startTamperProxy(h.stack.witnessUrl, (p, b) => (p === path && ++seen > 1 ? later(p, b) : undefined));
    try {
      const page = await open(second.url);
      expect(await page.textContent('#audit-status')).toMatch(/Every epoch of 1 namespace\(s\) verified/);
      await page.locator('article.epoch[data-epoch="1"] summary').first().click();
      const details = await page.textContent('article.epoch[data-epoch="1"] details');
      expect(details).toContain(truth.digest);
      expect(await page.content()).not.toContain(forged);
      await page.close();
    } finally {
      await second.close();
    }
  });

  it("shows a deployed fleet's evidence and its checks, verified in the browser", { timeout: 120_000 }, async () => {
    const d = await deploy({ members: 3, namespace: 'acme.backups' });
    const operator = operatorKeyFromSeed(new Uint8Array(32).fill(9));
    const w = await startWitness(await tempDir(), {
      addOperatorKeys: [encodeBase64(operator.publicKey)],
      addAllowedVendors: [d.vendorKey],
      addAllowedMeasurements: [d.measurement],
    });
    try {
      await publishDeployment({ witnessUrl: w.url, namespace: 'acme.backups', artifact: d.result.artifact, evidence: d.evidenceBytes, operator, counterSign: d.result.counterSign });
      const page = await h.newPage();
      await page.goto(`${h.web.url}#audit`);
      await page.fill('#audit-witness', w.url);
      await page.click('#audit-go');
      await page.locator('details.deployment').waitFor({ state: 'visible', timeout: 60_000 });
      const summary = await page.textContent('details.deployment summary');
      const checks = await page.locator('details.deployment .checks li').allTextContents();
      expect(summary, checks.join('\n')).toBe('Deployment evidence: verified');
      const all = checks.join('\n');
      for (const c of ['vendor-chain', 'attestation', 'measurement', 'key-endorsements', 'transcript', 'logged', 'inclusion', 'counter-signature']) {
        expect(all).toMatch(new RegExp(`${c}: passed`));
      }
      expect(all).toMatch(/3 members attested by their devices/);
      await h.shot(page, 'explorer-deployment-evidence');
      await page.close();
    } finally {
      await w.close();
      await cleanup();
    }
  });
});
