/** `bkv web`: prints a localhost URL (JSON with --json), serves the app and its configuration, stops on SIGTERM. */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';

describe('bkv web', () => {
  it('starts a local vault and witness, serves the app at a localhost URL, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['bin/bkv.js', 'web', '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('bkv web printed nothing in 30 s')), 30_000);
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) {
            clearTimeout(timer);
            resolve(buf.split('\n')[0]!);
          }
        });
        child.on('exit', (c) => reject(new Error(`bkv web exited ${c}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/localhost:\d+\/$/);
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(await page.text()).toContain('<title>bkv');
      const config = (await (await fetch(new URL('config.json', url))).json()) as { witnessKey: string; namespace: string; witness: string };
      expect(config.namespace).toBe('web.local');
      expect(config.witnessKey).toMatch(/^bkv-witness/);
      // The relayed gateway and witness answer through the same origin.
      const fleet = (await (await fetch(new URL('v1/fleet', url))).json()) as { mode: string };
      expect(fleet.mode).toBe('over-the-air');
      const key = (await (await fetch(new URL('witness/v1/key', url))).json()) as { verifierKey: string };
      expect(key.verifierKey).toBe(config.witnessKey);
      // Nothing outside the app's directory is served.
      expect((await fetch(new URL('..%2f..%2fpackage.json', url))).status).toBe(404);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
  });
});
