// Serving trained encoders from Node services: the library (Encoder) and its HTTP front end (createServer, `extrema serve`).
import type { FastifyInstance } from 'fastify';
import type { Encoder } from './encoder';
import type { ServerOptions } from './http';

export {
  Encoder, ClosedError, QueueFullError, TimeoutError, InputError, NotAClassifierError,
  type EncoderOptions, type EmbedRequestOptions, type ClassifyRequestOptions, type Classification, type EncoderStats,
} from './encoder';
export type { ServerOptions } from './http';

/**
 * The HTTP server of an encoder (see ./http). Loaded on first use, so that
 * requiring the library does not load fastify and prom-client (about 0.1 s)
 * for programs that never serve over HTTP.
 */
export function createServer(encoder: Encoder, options: ServerOptions = {}): FastifyInstance {
  return (require('./http') as typeof import('./http')).createServer(encoder, options);
}
