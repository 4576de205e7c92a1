// `extrema serve`: the options schema, its flags, and the process around the
// library's HTTP server (lib/serve/http.ts): open the encoder, listen, print
// the bound address, and on SIGTERM/SIGINT drain and exit 0.
import type { Command } from 'commander';
import type { AddressInfo } from 'node:net';
import { Encoder } from '../serve/encoder';
import { createServer, LOG_LEVELS } from '../serve/http';
import { addSchemaOptions, inputFromFlags, parseConfig, choice, int, num, text, flag, record, type FlagSpec } from '../config';

export const serveCommandSchema = record({
  checkpoint: text('a file path').describe("an ExtreMA checkpoint (.safetensors or the authors' .pth), or a classifier written by extrema finetune (adds /v1/classify)"),
  host: text('a host name or address').default('127.0.0.1').describe('address to listen on (0.0.0.0 for every interface)'),
  port: int(0, 65_535).default(8080).describe('port to listen on (0: any free port; the bound address is printed)'),
  device: text('a device (cpu, cuda, cuda:N)').default('cpu').describe('cpu, cuda or cuda:N'),
  maxBatch: int(1, 65_536).default(32).describe('most images per forward pass'),
  maxWaitMs: num(0, 60_000).default(0).describe('longest a request waits for its batch to fill while the model is idle, in ms (0: batches form only from requests that arrive while the model is busy)'),
  queueLimit: int(1, 1_000_000).default(256).describe('requests that may wait for the model (being decoded or queued for a batch); beyond this the answer is 503 with Retry-After'),
  timeoutMs: num(0, 3_600_000, { lowOpen: true }).default(30_000).describe('per-image deadline in ms; past it the answer is 504'),
  maxPixels: int(1, 1e12).default(40e6).describe('largest image accepted, in pixels, checked from its header before decoding'),
  mainThreadPixels: int(0, 256 * 256).default(4096).describe('plain PNGs of at most this many pixels that arrive while the model is busy are decoded on the event loop\'s thread (tens of microseconds) instead of the decoding thread (0: never)'),
  bodyLimit: int(1, 2 ** 31).default(20 * 2 ** 20).describe('largest request body in bytes (413 beyond)'),
  maxImages: int(1, 10_000).default(64).describe('most images in one multipart or JSON request'),
  normalize: flag().optional().describe('L2-normalise the features'),
  threads: int(1, 1024).optional().describe('libtorch intra-op threads (default: libtorch\'s choice)'),
  logLevel: choice(LOG_LEVELS).default('info').describe('request log level (JSON lines on stdout)'),
  plainLinear: flag().optional().describe("ATen's linear as in PyTorch's eager forward, instead of the packed product (CPU float32: the same values to float rounding; the packed one is about 20% faster)"),
  eager: flag().optional().describe("run the model's JavaScript for every batch instead of replaying each batch size's recorded operator trace (the same numbers; traces are used on the CPU only)"),
});

const SERVE_FLAGS: readonly FlagSpec[] = [
  { flags: '--checkpoint <file>', path: 'checkpoint' },
  { flags: '--host <host>', path: 'host' },
  { flags: '--port <n>', path: 'port' },
  { flags: '--device <device>', path: 'device' },
  { flags: '--max-batch <n>', path: 'maxBatch' },
  { flags: '--max-wait-ms <ms>', path: 'maxWaitMs' },
  { flags: '--queue-limit <n>', path: 'queueLimit' },
  { flags: '--timeout-ms <ms>', path: 'timeoutMs' },
  { flags: '--max-pixels <n>', path: 'maxPixels' },
  { flags: '--main-thread-pixels <n>', path: 'mainThreadPixels' },
  { flags: '--body-limit <bytes>', path: 'bodyLimit' },
  { flags: '--max-images <n>', path: 'maxImages' },
  { flags: '--normalize', path: 'normalize' },
  { flags: '--threads <n>', path: 'threads' },
  { flags: '--log-level <level>', path: 'logLevel' },
  { flags: '--plain-linear', path: 'plainLinear' },
  { flags: '--eager', path: 'eager' },
];

export function addServeCommand(program: Command): void {
  const cmd = program.command('serve')
    .description('serve an encoder (POST /v1/embed) or a fine-tuned classifier (also POST /v1/classify) over HTTP, with /healthz, /readyz and Prometheus /metrics');
  addSchemaOptions(cmd, serveCommandSchema, SERVE_FLAGS, { enforceRequired: true, showDefaults: true });
  cmd.action(async (flags: Record<string, unknown>) => {
    const o = parseConfig(serveCommandSchema, inputFromFlags(flags, serveCommandSchema, SERVE_FLAGS), { what: 'serve option' });
    const encoder = await Encoder.open({
      checkpoint: o.checkpoint, device: o.device, maxBatch: o.maxBatch, maxWaitMs: o.maxWaitMs, queueLimit: o.queueLimit,
      timeoutMs: o.timeoutMs, maxPixels: o.maxPixels, mainThreadPixels: o.mainThreadPixels, normalize: o.normalize ?? false, packWeights: !o.plainLinear,
      ...(o.eager ? { trace: false } : {}), ...(o.threads === undefined ? {} : { threads: o.threads }),
    });
    const app = createServer(encoder, { bodyLimit: o.bodyLimit, maxImages: o.maxImages, logLevel: o.logLevel });
    try {
      await app.listen({ host: o.host, port: o.port });
    } catch (e) {
      await encoder.close({ drain: false });
      throw e;
    }
    const { address, port, family } = app.server.address() as AddressInfo;
    process.stderr.write(`listening on http://${family === 'IPv6' ? `[${address}]` : address}:${port} (${encoder.kind}, ${encoder.width} features, warm-up ${encoder.warmupMs.toFixed(0)} ms, ${encoder.packedLinears} Linear layers packed, `
      + `${encoder.traced ? 'forward passes replayed from operator traces' : 'eager forward passes'})\n`);

    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second signal while draining: the operator does not want to wait.
        process.stderr.write(`${signal} again: exiting without draining\n`);
        process.exit(1);
      }
      stopping = true;
      process.stderr.write(`${signal}: draining (no new requests; answering those in flight)\n`);
      // The server first, so every request it accepted gets its answer from the still-open encoder.
      app.close()
        .then(() => encoder.close({ drain: true }))
        .then(() => process.stderr.write('drained; exiting\n'), (e: unknown) => {
          process.stderr.write(`extrema: shutdown failed: ${(e as Error)?.message ?? String(e)}\n`);
          process.exitCode = 1;
        });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
