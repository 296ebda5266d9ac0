/**
 * Serves the web app (dist/webapp) on loopback and relays its API calls, so the page talks to one
 * origin: `/v1/*` goes to the vault gateway, `/witness/*` to the witness. The relay is as
 * untrusted as the gateway itself: everything the app sends to the vault is sealed end to end,
 * and everything it learns from the witness it verifies.
 *
 * The printed URL uses the host name `localhost`: browsers allow WebAuthn (passkeys) only in a
 * secure context with a domain name, and `http://localhost` is one (an IP address is not).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_RETRY_AFTER_SECONDS, errorBody, notFoundMessage } from '../../node/http-errors.js';

export interface WebUpstream {
  /** The vault gateway the app uses (e.g. http://127.0.0.1:7410). */
  gatewayUrl: string;
  /** The witness the audit explorer opens by default. */
  witnessUrl?: string;
  /** /config.json: what the app pins (witness key and namespace, or fleet keys). */
  config: Record<string, unknown>;
}

export interface WebServerOptions extends Partial<WebUpstream> {
  port?: number;
  /** Directory of the built app (default dist/webapp of this checkout). */
  root?: string;
}

export interface RunningWebServer {
  url: string;
  /** The origin passkeys are bound to, e.g. http://localhost:7480 (what a vault's passkey policy allows). */
  origin: string;
  port: number;
  /** Sets (or changes) the gateway and witness; until then the API routes answer 503. */
  setUpstream(u: WebUpstream): void;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

export function defaultWebRoot(): string {
  return fileURLToPath(new URL('../../../dist/webapp/', import.meta.url));
}

const MAX_BODY = 256 * 1024;

/** An error in the JSON shape every bkv server uses (docs/api.md, "Errors"). */
function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(errorBody(code, message)));
}

async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) return null;
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

async function relay(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
  if (body === null) {
    sendError(res, 413, 'USAGE', 'request too large');
    return;
  }
  const headers: Record<string, string> = {};
  for (const h of ['content-type', 'authorization', 'accept']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  let upstream: Response;
  try {
    upstream = await fetch(target, { method: req.method ?? 'GET', headers, ...(body ? { body: new Uint8Array(body) } : {}), signal: AbortSignal.timeout(60_000) });
  } catch (e) {
    sendError(res, 502, 'UNAVAILABLE', `cannot reach ${new URL(target).origin}: ${(e as Error).message}`);
    return;
  }
  const out = Buffer.from(await upstream.arrayBuffer());
  const ct = upstream.headers.get('content-type');
  // A rate-limited client is told when to come back, as the upstream said (or one window).
  const retryAfter = upstream.headers.get('retry-after') ?? (upstream.status === 429 ? String(DEFAULT_RETRY_AFTER_SECONDS) : null);
  res
    .writeHead(upstream.status, { ...(ct ? { 'content-type': ct } : {}), ...(retryAfter ? { 'retry-after': retryAfter } : {}), 'cache-control': 'no-store' })
    .end(out);
}

/** Starts the app's server on 127.0.0.1 (and ::1 when available), printing a localhost URL. */
export async function startWebServer(opts: WebServerOptions): Promise<RunningWebServer> {
  const root = normalize(opts.root ?? defaultWebRoot());
  await stat(join(root, 'index.html')).catch(() => {
    throw new Error(`the web app is not built (${join(root, 'index.html')} is missing): run npm run build`);
  });
  let gateway = '';
  let witness: string | undefined;
  let configJson = '{}';
  const setUpstream = (u: WebUpstream) => {
    gateway = u.gatewayUrl.replace(/\/+$/, '');
    witness = u.witnessUrl?.replace(/\/+$/, '');
    configJson = JSON.stringify({ ...u.config, ...(witness ? { witness: '/witness' } : {}) });
  };
  if (opts.gatewayUrl) setUpstream({ gatewayUrl: opts.gatewayUrl, ...(opts.witnessUrl ? { witnessUrl: opts.witnessUrl } : {}), config: opts.config ?? {} });

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if ((path.startsWith('/v1/') || path.startsWith('/witness')) && !gateway) {
      sendError(res, 503, 'UNAVAILABLE', 'no vault configured yet');
      return;
    }
    if (path.startsWith('/v1/')) return relay(req, res, gateway + path + url.search);
    if (witness && (path === '/witness' || path.startsWith('/witness/'))) return relay(req, res, witness + path.slice('/witness'.length) + url.search);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, 'USAGE', `${req.method ?? ''} is not allowed here; use GET or HEAD`, { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/config.json') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(configJson);
      return;
    }
    const rel = path === '/' ? 'index.html' : decodeURIComponent(path.slice(1));
    const file = normalize(join(root, rel));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) {
      sendError(res, 404, 'USAGE', notFoundMessage(req.method ?? 'GET', path));
      return;
    }
    try {
      const data = await readFile(file);
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' }).end(req.method === 'HEAD' ? undefined : data);
    } catch {
      sendError(res, 404, 'USAGE', notFoundMessage(req.method ?? 'GET', path));
    }
  };
  const listen = (server: Server, host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  const v4 = createServer((q, s) => void handler(q, s).catch(() => s.headersSent || sendError(s, 500, 'INTERNAL', 'internal error')));
  const port = await listen(v4, '127.0.0.1', opts.port ?? 0);
  // `localhost` may resolve to ::1 first: answer there too when the machine has IPv6 loopback.
  const v6 = createServer((q, s) => void handler(q, s).catch(() => s.headersSent || sendError(s, 500, 'INTERNAL', 'internal error')));
  const hasV6 = await listen(v6, '::1', port).then(
    () => true,
    () => false,
  );
  const closeOne = (s: Server) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); });
  return {
    url: `http://localhost:${port}/`,
    origin: `http://localhost:${port}`,
    port,
    setUpstream,
    async close() {
      await Promise.all([closeOne(v4), ...(hasV6 ? [closeOne(v6)] : [])]);
    },
  };
}
