/**
 * A real, throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, run as the
 * `postgres` system user when we are root (PostgreSQL refuses to run as root), in a fresh
 * temporary directory, listening on 127.0.0.1 only, on a free port, with trust authentication.
 * Missing binaries are a failure, not a skip: CI installs them (.ci/run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

function findBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL server binaries not found (/usr/lib/postgresql/<version>/bin/initdb and pg_ctl): ' +
        'install the Debian package `postgresql` (apt-get install postgresql); the record-store tests need a real server',
    );
  }
  return join(root, versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findBinDir();
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[], timeoutMs: number) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(file, argv as string[], { encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) {
      throw new Error(`${cmd} failed (${r.status ?? r.signal ?? r.error?.message}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
    }
    return r.stdout;
  };
  const dir = mkdtempSync(join(tmpdir(), 'bkv-pg-'));
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const dataDir = join(dir, 'data');
  const log = join(dir, 'server.log');
  let port = 0;
  try {
    run('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], 120_000);
    // A port can be taken between our probe and the server's bind: a few attempts.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        run(
          'pg_ctl',
          [
            '-D', dataDir, '-l', log, '-w', '-t', '60',
            '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=50 -c shared_buffers=64MB`,
            'start',
          ],
          90_000,
        );
        break;
      } catch (e) {
        if (attempt >= 3) {
          const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
          throw new Error(`${(e as Error).message}\n${tail}`);
        }
      }
    }
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    // Bounded wait until it answers queries.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = new pg.Client({ connectionString: url });
      try {
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
        break;
      } catch (e) {
        await c.end().catch(() => undefined);
        if (Date.now() > deadline) throw new Error(`PostgreSQL on port ${port} did not answer: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    let stopped = false;
    return {
      url,
      port,
      dataDir,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'], 60_000);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (e) {
    try {
      run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'], 60_000);
    } catch {
      // not started
    }
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
