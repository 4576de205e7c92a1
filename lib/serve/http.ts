// The HTTP front end of an Encoder (`extrema serve`): a fastify instance with
// POST /v1/embed and /v1/classify (a raw image, multipart files or JSON
// base64), probes and Prometheus metrics. Every error is JSON
// {"error": {"code", "message"}} with the status a client or a load balancer
// can act on: 4xx for what the client sent, 503 with Retry-After for a full
// queue or a server that is draining, 504 for a request past its deadline.
// The server does not own the encoder: whoever opened it closes it, after
// closing the server (see lib/cli/serve.ts).
import { fastify, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { isPlainObject, positiveInt } from '../checks';
import { ClosedError, Encoder, InputError, NotAClassifierError, QueueFullError, TimeoutError, type Classification } from './encoder';
import { createMetrics } from './metrics';

export interface ServerOptions {
  /** Largest request body, and largest multipart body in all, in bytes (default 20 MiB). */
  bodyLimit?: number;
  /** Most images in one multipart or JSON request (default 64). */
  maxImages?: number;
  /** pino level of the request log: 'info' (default), 'debug', 'warn', ..., or 'silent'. */
  logLevel?: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The body types of one raw image; anything else is multipart, JSON, or refused with 415. */
export const IMAGE_CONTENT_TYPES: readonly string[] = Object.freeze(['image/jpeg', 'image/png', 'image/webp', 'application/octet-stream']);

/** An answer that is not a success, with its status and JSON error code. */
class HttpError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** The abort reason of a request whose client went away. */
class ClientGone extends Error {}

// What each error means to a client; fastify's and @fastify/multipart's by their codes.
const FRAMEWORK_ERRORS: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_REQ_FILE_TOO_LARGE: [413, 'body_too_large'],
  FST_FILES_LIMIT: [413, 'too_many_images'],
  FST_PARTS_LIMIT: [413, 'too_many_images'],
  FST_FIELDS_LIMIT: [413, 'too_many_fields'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'bad_json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'bad_json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'bad_request'],
  FST_MP_PREMATURE_CLOSE: [400, 'bad_multipart'],
};

function toHttpError(e: unknown, bodyLimit: number): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof QueueFullError) return new HttpError(503, 'queue_full', e.message, { 'retry-after': String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) });
  if (e instanceof ClosedError) return new HttpError(503, 'closing', 'The server is shutting down; retry on another instance', { 'retry-after': '1' });
  if (e instanceof TimeoutError) return new HttpError(504, 'timeout', e.message);
  if (e instanceof InputError) return new HttpError(400, 'bad_image', e.message);
  if (e instanceof NotAClassifierError) return new HttpError(400, 'not_a_classifier', e.message);
  if (e instanceof ClientGone) return new HttpError(499, 'client_closed', e.message);
  const fe = e as Partial<FastifyError> | null;
  const known = typeof fe?.code === 'string' ? FRAMEWORK_ERRORS[fe.code] : undefined;
  if (known !== undefined) {
    const [status, code] = known;
    const message = code === 'body_too_large' ? `The request body is over the limit of ${bodyLimit} bytes`
      : code === 'unsupported_media_type' ? `Expected a body of type ${IMAGE_CONTENT_TYPES.join(', ')}, multipart/form-data or application/json`
        : code === 'bad_json' ? `Expected a JSON body {"images": ["<base64>", ...]} but the body is ${fe!.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'empty' : 'not valid JSON'}`
          : String(fe!.message);
    return new HttpError(status, code, message);
  }
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return new HttpError(fe.statusCode, 'bad_request', String(fe.message));
  return new HttpError(500, 'internal', 'Internal server error');
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** Strict base64 (optionally a data: URL), since Buffer.from(s, 'base64') silently skips what is not base64. */
function fromBase64(text: unknown, at: number): Buffer {
  if (typeof text !== 'string') throw new HttpError(400, 'bad_request', `Expected a base64 string for images[${at}] but received ${text === null ? 'null' : typeof text}`);
  const payload = text.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (!BASE64.test(payload)) throw new HttpError(400, 'bad_base64', `Expected base64 for images[${at}] but it holds characters or padding that base64 does not`);
  return Buffer.from(payload, 'base64');
}

function parseTopK(query: unknown): number | undefined {
  const raw = isPlainObject(query) ? (query as Record<string, unknown>).topK : undefined;
  if (raw === undefined) return undefined;
  const n = typeof raw === 'string' && /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 100_000)) throw new HttpError(400, 'bad_request', `Expected an integer in [1, 100000] for topK but received ${JSON.stringify(raw)}`);
  return n;
}

/**
 * A fastify instance serving `encoder`, not yet listening: call listen()
 * (or inject() in tests). Closing it answers the requests in flight and
 * refuses new ones with 503; the encoder stays open.
 */
export function createServer(encoder: Encoder, options: ServerOptions = {}): FastifyInstance {
  if (!(encoder instanceof Encoder)) throw new TypeError(`Expected an Encoder (Encoder.open) for createServer but received ${Object.prototype.toString.call(encoder)}`);
  const bodyLimit = positiveInt(options.bodyLimit ?? 20 * 2 ** 20, '"bodyLimit" of createServer');
  const maxImages = positiveInt(options.maxImages ?? 64, '"maxImages" of createServer');
  const logLevel = options.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new TypeError(`Expected one of ${LOG_LEVELS.join(', ')} for "logLevel" but received ${String(logLevel)}`);

  const metrics = createMetrics(encoder);
  // Our own 503 while draining (below), in the JSON shape of every other error.
  // Silent: no logger at all, rather than a pino child per request that writes nothing.
  const app = fastify({ bodyLimit, logger: logLevel === 'silent' ? false : { level: logLevel }, return503OnClosing: false });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  const sendError = (reply: FastifyReply, e: HttpError) => {
    metrics.error(e.code);
    return reply.code(e.statusCode).headers(e.headers).send({ error: { code: e.code, message: e.message } });
  };
  app.setErrorHandler((err, request, reply) => {
    const e = toHttpError(err, bodyLimit);
    if (e.statusCode >= 500 && e.code === 'internal') request.log.error({ err }, 'request failed');
    else request.log.debug({ code: e.code, message: e.message }, 'request refused');
    return sendError(reply, e);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new HttpError(404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}; see POST /v1/embed, POST /v1/classify, GET /healthz, /readyz, /metrics`)));

  app.addHook('onRequest', (request, reply, done) => {
    if (closing && !['/healthz', '/readyz', '/metrics'].includes(request.routeOptions.url ?? '')) {
      void sendError(reply, new HttpError(503, 'closing', 'The server is shutting down; retry on another instance', { 'retry-after': '1', connection: 'close' }));
      return;
    }
    done();
  });
  // Answers in flight when draining began end their keep-alive connection, so close() need not wait for the idle timeout.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.request(request.routeOptions.url ?? 'not_found', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  // fastify reads text/plain by default; an image never comes as text, so that is a 415 like any other type.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser([...IMAGE_CONTENT_TYPES], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  void app.register(multipart, {
    // Each file is bounded by bodyLimit, and readImages bounds their sum by it too.
    limits: { fileSize: bodyLimit, files: maxImages, fields: 16, fieldSize: 64 * 1024, parts: maxImages + 16 },
  });

  async function readImages(request: FastifyRequest): Promise<Buffer[]> {
    if (request.headers['content-type'] === undefined) {
      throw new HttpError(415, 'unsupported_media_type', `Expected a content type (${IMAGE_CONTENT_TYPES.join(', ')}, multipart/form-data or application/json) but the request has none`);
    }
    if (request.isMultipart()) {
      const images: Buffer[] = [];
      let total = 0;
      for await (const part of request.parts()) {
        if (part.type !== 'file') continue; // text fields carry nothing we use
        const image = await part.toBuffer();
        total += image.length;
        if (total > bodyLimit) throw new HttpError(413, 'body_too_large', `The images of the request are over the limit of ${bodyLimit} bytes in all`);
        images.push(image);
      }
      if (images.length === 0) throw new HttpError(400, 'no_images', 'Expected at least one file in the multipart/form-data body but it has none');
      return images;
    }
    const body = request.body;
    if (Buffer.isBuffer(body)) return [body];
    if (!isPlainObject(body) || !Array.isArray((body as { images?: unknown }).images)) {
      throw new HttpError(400, 'bad_request', 'Expected a JSON body {"images": ["<base64>", ...]}');
    }
    const list = (body as { images: unknown[] }).images;
    if (list.length === 0) throw new HttpError(400, 'no_images', 'Expected at least one image in "images" but it is empty');
    if (list.length > maxImages) throw new HttpError(413, 'too_many_images', `Expected at most ${maxImages} images in one request but received ${list.length}`);
    return list.map(fromBase64);
  }

  /** Runs every image of the request; the first failure cancels the rest and names its image when there are several. */
  async function run<T>(request: FastifyRequest, reply: FastifyReply, one: (image: Buffer, signal: AbortSignal) => Promise<T>): Promise<T[]> {
    const abort = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort(new ClientGone('The client closed the connection before the answer'));
    });
    const images = await readImages(request);
    return Promise.all(images.map((image, i) => one(image, abort.signal).catch((e: unknown) => {
      abort.abort(e);
      if (images.length > 1 && e instanceof InputError) throw new InputError(`image ${i}: ${e.message}`);
      throw e;
    })));
  }

  app.post('/v1/embed', async (request, reply) => {
    const rows = await run(request, reply, (image, signal) => encoder.embed(image, { signal }));
    return { features: rows.map((r) => Array.from(r)), width: encoder.width };
  });

  app.post('/v1/classify', async (request, reply) => {
    if (encoder.numClasses === null) {
      throw new HttpError(400, 'not_a_classifier', 'This server runs a pretrained encoder, not a fine-tuned classifier: POST /v1/embed for features, or serve a checkpoint written by `extrema finetune`');
    }
    const topK = parseTopK(request.query);
    const predictions: Classification[][] = await run(request, reply, (image, signal) => encoder.classify(image, { signal, ...(topK === undefined ? {} : { topK }) }));
    return { predictions };
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // An Encoder exists only after its warm-up pass, so ready means: not draining and the worker alive.
  app.get('/readyz', async (_request, reply) => {
    if (closing || encoder.closed) return reply.code(503).header('retry-after', '1').send({ ready: false, reason: closing ? 'the server is shutting down' : 'the encoder is closed' });
    return { ready: true, kind: encoder.kind, width: encoder.width };
  });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  return app;
}
