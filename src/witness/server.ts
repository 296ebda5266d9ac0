/**
 * The witness HTTP API (fastify). Node only. Routes: docs/formats/witness-api.md.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { installNativeSha256 } from '../node/native-sha256.js';
import { errorBody, installHttpConventions } from '../node/http-errors.js';
import { BkvError } from '../shared/errors.js';
import { encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { parseDecimal } from '../shared/fleet-formats/encoding.js';
import { TILE_HEIGHT, TILE_WIDTH, decodeTileIndex, encodeEntryBundle } from '../shared/merkle/index.js';
import { WitnessLog, type WitnessLogOptions } from './log.js';
import { buildValidationBundle } from './bundle.js';
import { localReader } from './reader.js';
import type { SubmissionBody } from './protocol.js';
import { AddCheckpointError, MAX_ADD_CHECKPOINT_BYTES, TLOG_SIZE_CONTENT_TYPE } from './cosigner.js';

const STATUS: Record<string, number> = {
  USAGE: 400,
  MALFORMED: 400,
  UNAUTHORIZED: 401,
  RATE_LIMITED: 429,
  VERIFICATION_FAILED: 422,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  IO: 500,
};

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BkvError) {
    const status = (err.details.status as number | undefined) ?? STATUS[err.code] ?? 500;
    const check = typeof err.details.check === 'string' ? { check: err.details.check } : {};
    if (typeof err.details.retryAfterSeconds === 'number') reply.header('retry-after', String(err.details.retryAfterSeconds));
    return reply.code(status).send(errorBody(err.code, err.message, check));
  }
  // fastify's own refusals (a body that does not parse, or is too large) keep their status
  const e = err as { statusCode?: number; message?: string };
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send(errorBody('MALFORMED', e.message ?? 'bad request'));
  return reply.code(500).send(errorBody('INTERNAL', 'internal error'));
}

function num(s: unknown, what: string): number {
  if (typeof s !== 'string') throw new BkvError('USAGE', `${what} is required`);
  try {
    return parseDecimal(s, what);
  } catch {
    throw new BkvError('USAGE', `${what} must be a canonical decimal number`);
  }
}

export function createWitnessApp(log: WitnessLog, opts: { logger?: boolean } = {}): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 256 * 1024 });
  const reader = localReader(log);
  installHttpConventions(app);
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));
  // The log is public: any web page may read it (the audit explorer in a browser opened on this
  // witness). Reads only; submissions are authenticated by the operator's signature anyway.
  app.addHook('onSend', async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD') reply.header('access-control-allow-origin', '*');
  });
  const wrap =
    <T>(f: (req: { params: Record<string, string>; query: Record<string, string>; body: unknown }) => Promise<T> | T) =>
    async (req: { params: unknown; query: unknown; body: unknown }, reply: FastifyReply) => {
      try {
        const out = await f({ params: req.params as Record<string, string>, query: req.query as Record<string, string>, body: req.body });
        return out;
      } catch (e) {
        return sendError(reply, e);
      }
    };

  app.get('/v1/key', wrap(() => log.keyInfo()));
  app.get('/v1/cosigners', wrap(() => ({ cosigners: log.collector?.status() ?? [], cosignedLogs: log.cosigner.watchedLogs() })));

  // C2SP tlog-witness: POST /add-checkpoint takes a text body whatever its content type.
  void app.register(async (sub) => {
    sub.removeAllContentTypeParsers();
    sub.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_ADD_CHECKPOINT_BYTES }, (_req, body, done) => done(null, body));
    // tlog-witness refusals are one line of text (a body over the limit: 413)
    sub.setErrorHandler((err, _req, reply) => {
      const status = (err as { statusCode?: number }).statusCode;
      const code = status && status >= 400 && status < 500 ? status : 500;
      return reply.code(code).type('text/plain; charset=utf-8').send(`${code === 500 ? 'internal error' : (err as Error).message}\n`);
    });
    sub.post('/add-checkpoint', async (req, reply) => {
      const body = req.body;
      if (!(body instanceof Uint8Array)) return reply.code(400).type('text/plain; charset=utf-8').send('malformed add-checkpoint body: empty\n');
      try {
        const line = await log.cosigner.addCheckpoint(body);
        return reply.code(200).type('text/plain; charset=utf-8').send(line);
      } catch (e) {
        if (e instanceof AddCheckpointError) {
          if (e.status === 409) return reply.code(409).type(TLOG_SIZE_CONTENT_TYPE).send(`${e.latestSize}\n`);
          return reply.code(e.status).type('text/plain; charset=utf-8').send(e.message + '\n');
        }
        return reply.code(500).type('text/plain; charset=utf-8').send('internal error\n');
      }
    });
  });
  // tlog-witness monitoring: the latest checkpoint cosigned for a log, by hex SHA-256 of its origin
  app.get('/:originHash/checkpoint', async (req, reply) => {
    const h = (req.params as { originHash: string }).originHash;
    const note = /^[0-9a-f]{64}$/.test(h) ? log.cosigner.latestCheckpoint(h) : undefined;
    if (note === undefined) return reply.code(404).type('text/plain; charset=utf-8').send('this witness has cosigned no checkpoint of that log\n');
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(note);
  });
  app.get('/v1/namespaces', wrap(() => ({ namespaces: log.namespaces() })));
  app.get('/v1/namespaces/:ns', wrap(({ params }) => ({ namespace: params.ns, latestEpoch: log.latestEpoch(params.ns!) })));
  app.post(
    '/v1/namespaces/:ns/epochs',
    wrap(({ params, body }) => log.submit(params.ns!, body as SubmissionBody)),
  );
  app.get('/v1/namespaces/:ns/epochs/:epoch', wrap(({ params }) => log.epochRecord(params.ns!, num(params.epoch, 'epoch'))));
  app.get('/v1/namespaces/:ns/epochs/:epoch/artifact', async (req, reply) => {
    try {
      const p = req.params as Record<string, string>;
      const bytes = log.artifact(p.ns!, num(p.epoch, 'epoch'));
      return reply.type('application/octet-stream').send(Buffer.from(bytes));
    } catch (e) {
      return sendError(reply, e);
    }
  });
  app.get('/v1/namespaces/:ns/epochs/:epoch/evidence', async (req, reply) => {
    try {
      const p = req.params as Record<string, string>;
      const bytes = log.evidence(p.ns!, num(p.epoch, 'epoch'));
      return reply.type('application/json').send(Buffer.from(bytes));
    } catch (e) {
      return sendError(reply, e);
    }
  });
  app.get('/v1/policy', wrap(() => ({
    evidenceRequired: log.evidenceRequired,
    allowedVendors: log.config.allowedVendors ?? [],
    allowedMeasurements: log.config.allowedMeasurements ?? [],
  })));
  app.put(
    '/v1/namespaces/:ns/epochs/:epoch/counter-signature',
    wrap(({ params, body }) => {
      const cs = (body as { counterSignature?: unknown } | null)?.counterSignature;
      if (typeof cs !== 'string') throw new BkvError('MALFORMED', 'body must be {"counterSignature": base64}');
      return log.addCounterSignature(params.ns!, num(params.epoch, 'epoch'), cs);
    }),
  );
  app.get(
    '/v1/proof/inclusion',
    wrap(({ query }) => {
      const index = num(query.index, 'index');
      const size = num(query.size, 'size');
      return { leafIndex: index, treeSize: size, proof: log.inclusionProof(index, size).map(encodeBase64) };
    }),
  );
  app.get(
    '/v1/proof/consistency',
    wrap(({ query }) => {
      const size1 = num(query.size1, 'size1');
      const size2 = num(query.size2, 'size2');
      return { size1, size2, proof: log.consistencyProof(size1, size2).map(encodeBase64) };
    }),
  );
  app.get(
    '/v1/bundle/:ns',
    wrap(({ params, query }) =>
      buildValidationBundle(reader, params.ns!, {
        ...(query.epoch !== undefined ? { epoch: num(query.epoch, 'epoch') } : {}),
        ...(query.knownTreeSize !== undefined ? { knownTreeSize: num(query.knownTreeSize, 'knownTreeSize') } : {}),
      }),
    ),
  );

  // C2SP tlog-tiles: /checkpoint, /tile/<L>/<N>[.p/<W>], /tile/entries/<N>[.p/<W>]
  app.get('/checkpoint', async (_req, reply) =>
    reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(log.checkpoint().note),
  );
  app.get('/tile/*', async (req, reply) => {
    const rest = (req.params as { '*': string })['*'];
    const tile = parseTileRequest(rest);
    if (!tile) return reply.code(404).send(errorBody('USAGE', 'no such tile'));
    const size = log.checkpoint().size;
    if (tile.level === 'entries') {
      const start = tile.index * TILE_WIDTH;
      if (start + tile.width > size) return reply.code(404).send(errorBody('USAGE', 'no such tile'));
      const full = Math.floor(size / TILE_WIDTH) > tile.index;
      if (tile.width !== TILE_WIDTH && full) return reply.code(404).send(errorBody('USAGE', 'use the full tile'));
      const entries: Uint8Array[] = [];
      for (let i = 0; i < tile.width; i++) entries.push(log.entry(start + i));
      return reply
        .type('application/octet-stream')
        .header('cache-control', tile.width === TILE_WIDTH ? 'public, max-age=31536000, immutable' : 'no-store')
        .send(Buffer.from(encodeEntryBundle(entries)));
    }
    const treeLevel = tile.level * TILE_HEIGHT;
    // hashes at treeLevel that are covered by the current checkpoint
    const available = Math.floor(size / 2 ** treeLevel);
    const start = tile.index * TILE_WIDTH;
    if (start + tile.width > available) return reply.code(404).send(errorBody('USAGE', 'no such tile'));
    if (tile.width !== TILE_WIDTH && available >= start + TILE_WIDTH) {
      return reply.code(404).send(errorBody('USAGE', 'use the full tile'));
    }
    const out = new Uint8Array(32 * tile.width);
    for (let i = 0; i < tile.width; i++) out.set(log.tree.storedHash(treeLevel, start + i)!, 32 * i);
    return reply
      .type('application/octet-stream')
      .header('cache-control', tile.width === TILE_WIDTH ? 'public, max-age=31536000, immutable' : 'no-store')
      .send(Buffer.from(out));
  });
  return app;
}

export function parseTileRequest(path: string): { level: number | 'entries'; index: number; width: number } | undefined {
  const segs = path.split('/');
  const levelSeg = segs.shift();
  if (levelSeg === undefined) return undefined;
  let level: number | 'entries';
  if (levelSeg === 'entries') level = 'entries';
  else if (/^(0|[1-9][0-9]?)$/.test(levelSeg)) level = Number(levelSeg);
  else return undefined;
  let width = TILE_WIDTH;
  const last = segs[segs.length - 1];
  if (segs.length >= 2 && /^[0-9]+$/.test(last ?? '') && segs[segs.length - 2]!.endsWith('.p')) {
    const w = Number(last);
    if (!/^[1-9][0-9]*$/.test(last!) || w < 1 || w >= TILE_WIDTH) return undefined;
    width = w;
    segs.pop();
    segs[segs.length - 1] = segs[segs.length - 1]!.slice(0, -2);
  }
  const index = decodeTileIndex(segs);
  if (index === undefined) return undefined;
  return { level, index, width };
}

export interface RunningWitness {
  log: WitnessLog;
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** Opens the witness directory and listens (port 0 picks a free port). */
export async function startWitness(
  dir: string,
  opts: WitnessLogOptions & { host?: string; port?: number; logger?: boolean } = {},
): Promise<RunningWitness> {
  installNativeSha256();
  const log = await WitnessLog.open(dir, opts);
  const app = createWitnessApp(log, { logger: opts.logger ?? false });
  try {
    await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  } catch (e) {
    await log.close();
    throw new BkvError('IO', `witness cannot listen: ${(e as Error).message}`);
  }
  // cosign the current checkpoint (cosigners may have been added, or restarted) without delaying the start
  void refreshInBackground(log);
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    log,
    app,
    url,
    async close() {
      await app.close();
      await log.close();
    },
  };
}

function refreshInBackground(log: WitnessLog): Promise<void> {
  return log.collector ? log.refreshCosignatures() : Promise.resolve();
}
