import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of a gateway (and the member behind it). Nothing here carries secrets. */
export function createGatewayMetrics(readCoreStats?: () => Record<string, number>) {
  const registry = new Registry();
  // The event-loop delay monitor samples every 100 ms, not prom-client's 10 ms: each sample is a timer
  // wake-up of an otherwise idle process.
  collectDefaultMetrics({ register: registry, prefix: 'bkv_gateway_', eventLoopMonitoringPrecision: 100 });
  const requests = new Counter({
    name: 'bkv_gateway_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'bkv_gateway_vault_request_seconds',
    help: 'Time to relay a vault request and receive the reply',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  if (readCoreStats) {
    new Gauge({
      name: 'bkv_core_events',
      help: 'Counters reported by the vault core (requests, rejected, credentialResponses, recoveries)',
      labelNames: ['event'] as const,
      registers: [registry],
      collect() {
        for (const [event, v] of Object.entries(readCoreStats())) this.set({ event }, v);
      },
    });
  }
  return { registry, requests, latency };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
