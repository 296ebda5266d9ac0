/**
 * Browser tests: Debian's Chromium driven by playwright-core, against the web app served by the
 * same server as `bkv web` and a local vault and witness. Each test file gets one browser; every
 * page visited is saved as a screenshot under test-output/screenshots/<file>/ (printed).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startLocalStack, type LocalStack } from '../../src/host/web/local-stack.js';
import { startWebServer, type RunningWebServer } from '../../src/host/web/server.js';

export const CHROMIUM = process.env.BKV_CHROMIUM ?? '/usr/bin/chromium';

export interface WebHarness {
  stack: LocalStack;
  web: RunningWebServer;
  context: BrowserContext;
  dir: string;
  shotsDir: string;
  newPage(width?: number, height?: number): Promise<Page>;
  shot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(name: string): Promise<WebHarness> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: the browser tests need it (apt-get install chromium; .ci/run installs it). Set BKV_CHROMIUM to use another path.`,
    );
  }
  if (!existsSync(resolve('dist/webapp/index.html'))) throw new Error('the web app is not built: run npm run build');
  const dir = await mkdtemp(join(tmpdir(), `bkv-${name}-`));
  const shotsDir = resolve('test-output', 'screenshots', name);
  await rm(shotsDir, { recursive: true, force: true });
  await mkdir(shotsDir, { recursive: true });
  process.stdout.write(`screenshots of ${name}: ${shotsDir}\n`);
  const web = await startWebServer({ port: 0 });
  const stack = await startLocalStack(join(dir, 'stack'), { passkeyOrigins: [web.origin] });
  web.setUpstream({ gatewayUrl: stack.gatewayUrl, witnessUrl: stack.witnessUrl, config: { witnessKey: stack.witnessKey, namespace: stack.namespace } });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 60_000,
    });
  } catch (e) {
    await web.close();
    await stack.close();
    throw e;
  }
  let n = 0;
  return {
    stack,
    web,
    context,
    dir,
    shotsDir,
    async newPage(width = 1100, height = 900) {
      const page = await context.newPage();
      await page.setViewportSize({ width, height });
      page.setDefaultTimeout(30_000);
      return page;
    },
    async shot(page, label) {
      n++;
      await page.screenshot({ path: join(shotsDir, `${String(n).padStart(2, '0')}-${label}.png`), fullPage: true });
    },
    async close() {
      await context.close().catch(() => undefined);
      await web.close();
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
