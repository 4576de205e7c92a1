// Prometheus metrics of one HTTP server (lib/serve/http.ts), in a registry of
// its own rather than prom-client's global one, so two servers in a process
// (tests, a service that embeds several models) never share or clash over
// counters. Encoder-side numbers (batch sizes, queue depth) are read from
// Encoder.stats() when scraped, so the encoder needs no hooks for them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Encoder } from './encoder';

export interface ServerMetrics {
  readonly registry: Registry;
  /** One finished HTTP request: its route pattern (not the raw URL, which a client could vary without bound), status and duration. */
  request(route: string, statusCode: number, seconds: number): void;
  /** One error answer, by its JSON error code. */
  error(code: string): void;
}

/** Powers of two up to the encoder's largest batch. */
function batchBuckets(maxBatch: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) out.push(b);
  out.push(maxBatch);
  return out;
}

export function createMetrics(encoder: Encoder): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'extrema_http_requests_total', help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'status_code'] as const, registers: [registry],
  });
  const errors = new Counter({
    name: 'extrema_http_errors_total', help: 'Error answers, by error code', labelNames: ['code'] as const, registers: [registry],
  });
  const latency = new Histogram({
    name: 'extrema_http_request_duration_seconds', help: 'Time from request to response, by route',
    labelNames: ['route'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Batches counted since the last scrape are observed at the next one.
  let seen: number[] = [];
  new Histogram({
    name: 'extrema_encoder_batch_size', help: 'Images per forward pass of the encoder',
    buckets: batchBuckets(encoder.maxBatch), registers: [registry],
    collect() {
      const sizes = encoder.stats().batchSizes;
      sizes.forEach((n, size) => {
        for (let k = seen[size] ?? 0; k < n; k++) this.observe(size);
      });
      seen = sizes;
    },
  });
  // Two routes around the decoding thread, counted from the encoder's stats at each scrape.
  const routes = [
    ['extrema_encoder_direct_requests_total', 'Requests that found the model idle and were decoded in its thread instead of the decoding thread', 'direct'],
    ['extrema_encoder_main_thread_decoded_total', 'Small plain PNGs that arrived while the model was busy and were decoded on the main thread instead of the decoding thread', 'mainThreadDecoded'],
  ] as const;
  for (const [name, help, stat] of routes) {
    let counted = 0;
    new Counter({
      name, help, registers: [registry],
      collect() {
        const now = encoder.stats()[stat];
        this.inc(now - counted);
        counted = now;
      },
    });
  }
  new Gauge({
    name: 'extrema_encoder_queue_depth', help: 'Requests waiting for a batch', registers: [registry],
    collect() {
      this.set(encoder.stats().queued);
    },
  });
  new Gauge({
    name: 'extrema_encoder_in_flight', help: 'Requests in the batch the model is computing', registers: [registry],
    collect() {
      this.set(encoder.stats().inFlight);
    },
  });
  return {
    registry,
    request(route, statusCode, seconds) {
      requests.inc({ route, status_code: String(statusCode) });
      latency.observe({ route }, seconds);
    },
    error(code) {
      errors.inc({ code });
    },
  };
}
