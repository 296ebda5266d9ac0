import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BkvError, isBkvError, type ErrorCode } from '../../shared/errors.js';
import { errorBody, installHttpConventions, retryAfterSeconds } from '../../node/http-errors.js';
import type { AccountVerifier, DevTokenIssuer } from './auth.js';
import { createGatewayMetrics } from './metrics.js';

/** Relays a sealed request for an authenticated account to a vault member and returns the reply. */
export type VaultRelay = (account: string, envelope: Uint8Array) => Promise<Uint8Array>;

export interface GatewayOptions {
  relay: VaultRelay;
  verifier: AccountVerifier;
  /** The fleet information clients fetch: public keys (pinned mode) and, later, the validation bundle. */
  fleetInfo: (query: { knownTreeSize: number }) => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Extra health facts (commit index, role, ...). */
  health?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  coreStats?: () => Record<string, number>;
  /** Registers more collectors on the gateway's metrics registry (the fleet relay's). */
  extraMetrics?: (registry: import('prom-client').Registry) => void;
  /** Enables POST /v1/dev/token. Development only. */
  devIssuer?: DevTokenIssuer;
  rateLimit?: { perAddressPerMinute?: number; perAccountPerMinute?: number };
  logger?: Logger | false;
}

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  MALFORMED: 400,
  TAMPERED: 400,
  USAGE: 400,
  UNAUTHORIZED: 401,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
};

declare module 'fastify' {
  interface FastifyRequest {
    account?: string;
  }
}

/**
 * The untrusted front end (docs/api.md). It authenticates accounts, rate-limits, relays opaque
 * bytes to the vault and reports health and metrics. It never sees a password, a key or a record.
 */
export async function buildGateway(opts: GatewayOptions): Promise<FastifyInstance> {
  const app = (
    opts.logger ? Fastify({ loggerInstance: opts.logger, bodyLimit: 64 * 1024 }) : Fastify({ logger: false, bodyLimit: 64 * 1024 })
  ) as unknown as FastifyInstance;
  const metrics = createGatewayMetrics(opts.coreStats);
  opts.extraMetrics?.(metrics.registry);

  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const perAddress = opts.rateLimit?.perAddressPerMinute ?? 600;
  const perAccountMax = opts.rateLimit?.perAccountPerMinute ?? 120;
  await app.register(rateLimit, {
    global: true,
    max: perAddress,
    timeWindow: 60_000,
    keyGenerator: (req) => `addr:${req.ip}`,
  });

  // Unknown routes cost the address's budget too, and answer 404 in the usual JSON shape.
  installHttpConventions(app, { notFoundPreHandler: app.rateLimit() });

  app.setErrorHandler((err: unknown, _req, reply) => {
    const e = err as { statusCode?: number; message?: string };
    if (isBkvError(err)) {
      const wait = err.details.retryAfterSeconds;
      if (typeof wait === 'number') reply.header('retry-after', String(wait));
      return reply.code(HTTP_STATUS[err.code] ?? 500).send(errorBody(err.code, err.message));
    }
    if (e.statusCode === 429) {
      // The address limiter already set Retry-After (whole seconds until its window ends).
      const wait = Number(reply.getHeader('retry-after'));
      const s = Number.isInteger(wait) && wait > 0 ? wait : retryAfterSeconds(undefined);
      reply.header('retry-after', String(s));
      return reply.code(429).send(errorBody('RATE_LIMITED', `too many requests from this address (at most ${perAddress} a minute)`));
    }
    if (e.statusCode && e.statusCode < 500) {
      return reply.code(e.statusCode).send(errorBody('MALFORMED', e.message ?? 'bad request'));
    }
    app.log.error({ err }, 'unexpected gateway error');
    return reply.code(500).send(errorBody('INTERNAL', 'internal error'));
  });

  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });

  const authenticate = async (req: FastifyRequest) => {
    req.account = await opts.verifier.verify(req.headers.authorization);
  };
  // A second limiter keyed by the authenticated account (the global one is keyed by address).
  const perAccount = app.createRateLimit({
    max: perAccountMax,
    timeWindow: 60_000,
    keyGenerator: (req) => `acct:${req.account}`,
  });
  const limitAccount = async (req: FastifyRequest) => {
    const r = await perAccount(req);
    if (!r.isAllowed && r.isExceeded) {
      const s = retryAfterSeconds(r.ttl);
      throw new BkvError('RATE_LIMITED', `too many vault requests for this account (at most ${perAccountMax} a minute)`, { retryAfterSeconds: s });
    }
  };

  app.post(
    '/v1/vault',
    {
      onRequest: authenticate,
      preHandler: limitAccount,
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      if (!Buffer.isBuffer(req.body)) throw new BkvError('MALFORMED', 'send the sealed request as application/octet-stream');
      const stop = metrics.latency.startTimer();
      try {
        const out = await opts.relay(req.account!, new Uint8Array(req.body));
        return reply.type('application/octet-stream').send(Buffer.from(out));
      } finally {
        stop();
      }
    },
  );

  app.get('/v1/fleet', async (req) => {
    const raw = (req.query as { knownTreeSize?: string }).knownTreeSize ?? '0';
    if (!/^(0|[1-9][0-9]{0,15})$/.test(raw)) throw new BkvError('MALFORMED', 'knownTreeSize must be a non-negative integer');
    return opts.fleetInfo({ knownTreeSize: Number(raw) });
  });

  app.get('/healthz', async () => ({ status: 'ok', ...(await opts.health?.()) }));

  app.get('/metrics', async (_req, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  if (opts.devIssuer) {
    const issuer = opts.devIssuer;
    app.post('/v1/dev/token', async (req) => {
      const body = req.body as { account?: unknown } | undefined;
      if (typeof body?.account !== 'string') throw new BkvError('USAGE', 'send {"account": "..."}');
      return { token: await issuer.issue(body.account), issuer: 'development', warning: 'development tokens: never enable in production' };
    });
  }

  return app;
}
