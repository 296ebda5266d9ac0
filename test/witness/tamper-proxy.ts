/**
 * An HTTP proxy on 127.0.0.1 in front of a real witness that rewrites chosen answers: what an
 * attacker on the path (or a lying mirror) can do to an auditor.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Given the request path and the witness's answer, returns the bytes to send instead (or undefined: unchanged). */
export type Rewrite = (path: string, body: Buffer) => Buffer | string | undefined;

export interface TamperProxy {
  url: string;
  /** Paths whose answers were rewritten so far. */
  rewritten: string[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startTamperProxy(target: string, rewrite: Rewrite): Promise<TamperProxy> {
  const rewritten: string[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const upstream = await fetch(target + req.url, {
        method: req.method ?? 'GET',
        headers: Object.fromEntries(
          ['content-type', 'origin'].flatMap((k) => (typeof req.headers[k] === 'string' ? [[k, req.headers[k] as string]] : [])),
        ),
        ...(body.length > 0 ? { body: new Uint8Array(body) } : {}),
      });
      let out = Buffer.from(await upstream.arrayBuffer());
      const changed = upstream.ok ? rewrite(req.url ?? '', out) : undefined;
      if (changed !== undefined) {
        out = Buffer.from(changed);
        rewritten.push(req.url ?? '');
      }
      const headers: Record<string, string> = {};
      upstream.headers.forEach((v, k) => {
        if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) headers[k] = v;
      });
      res.writeHead(upstream.status, headers);
      res.end(out);
    })().catch(() => {
      res.writeHead(502).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    rewritten,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A rewrite of one JSON answer at exactly `path`. */
export function rewriteJson(path: string, edit: (j: Record<string, unknown>) => void): Rewrite {
  return (p, body) => {
    if (p !== path) return undefined;
    const j = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    edit(j);
    return JSON.stringify(j);
  };
}
