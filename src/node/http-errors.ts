/**
 * What every bkv HTTP server (gateway, fleet member, witness) answers alike (docs/api.md, "Errors"):
 * errors as `{"error":{"code","message"}}`, unknown routes as a 404 of that shape, and every 429
 * with a `Retry-After` header (whole seconds), so a client knows when to try again.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';

/** A limiter that cannot say when its window ends asks for one whole window: one minute. */
export const DEFAULT_RETRY_AFTER_SECONDS = 60;

export interface ErrorBody {
  error: { code: string; message: string } & Record<string, unknown>;
}

export function errorBody(code: string, message: string, extra: Record<string, unknown> = {}): ErrorBody {
  return { error: { code, message, ...extra } };
}

/** The 404 message: method and path (at most 200 characters; never the query, which may hold secrets). */
export function notFoundMessage(method: string, url: string): string {
  const path = url.split('?')[0]!;
  return `no such route: ${method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`;
}

/** Whole seconds to wait, at least 1, from a limiter's milliseconds or seconds. */
export function retryAfterSeconds(ms: number | undefined): number {
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : DEFAULT_RETRY_AFTER_SECONDS;
}

/**
 * Installs the shared behaviour on `app`: the JSON 404 for unknown routes (after `notFoundPreHandler`,
 * e.g. a rate limiter, so unknown routes cost the same budget as known ones) and a `Retry-After`
 * on any 429 that was sent without one.
 */
export function installHttpConventions(app: FastifyInstance, opts: { notFoundPreHandler?: preHandlerAsyncHookHandler } = {}): void {
  const notFound = async (req: FastifyRequest, reply: FastifyReply) => reply.code(404).send(errorBody('USAGE', notFoundMessage(req.method, req.url)));
  if (opts.notFoundPreHandler) app.setNotFoundHandler({ preHandler: opts.notFoundPreHandler }, notFound);
  else app.setNotFoundHandler(notFound);
  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode === 429 && !reply.hasHeader('retry-after')) reply.header('retry-after', String(DEFAULT_RETRY_AFTER_SECONDS));
    return payload;
  });
}
