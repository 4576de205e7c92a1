// An encoder inside an existing Node HTTP service (issue 12's library part):
// POST an image to /embed, get its features as JSON. The model runs in a
// worker thread (et.Encoder), so the server keeps answering while batches
// run; concurrent requests are grouped into micro-batches.
//   node dist/examples/service.js <checkpoint.safetensors> [port]
// With EXTREMA_EXAMPLE_SELFTEST=<image file> it starts on a free port, posts
// that image to itself three times at once, prints what came back and stops.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as et from '../lib';

const checkpoint = process.argv[2];
if (checkpoint === undefined) throw new Error('usage: node dist/examples/service.js <checkpoint.safetensors> [port]');
const port = Number(process.argv[3] ?? 8080);
const MAX_BODY = 20 * 2 ** 20;

/** The request body, refused past MAX_BODY without reading the rest. */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error(`body over ${MAX_BODY} bytes`), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

async function main(): Promise<void> {
  const encoder = await et.Encoder.open({ checkpoint: checkpoint!, maxBatch: 16, maxWaitMs: 5, normalize: true });
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/embed') return send(res, 404, { error: 'POST an image to /embed' });
    // a client that goes away cancels its request if it has not run yet
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    readBody(req)
      .then((body) => encoder.embed(body, { signal: abort.signal }))
      .then((features) => send(res, 200, { features: Array.from(features) }))
      .catch((e: Error & { status?: number }) => {
        if (e instanceof et.QueueFullError) send(res, 503, { error: e.message }, { 'retry-after': String(Math.ceil(e.retryAfterMs / 1000)) });
        else if (e instanceof et.InputError) send(res, 400, { error: e.message });
        else if (e instanceof et.TimeoutError) send(res, 504, { error: e.message });
        else if (!res.headersSent) send(res, e.status ?? 500, { error: e.message });
      });
  });
  const selfTest = process.env.EXTREMA_EXAMPLE_SELFTEST;
  await new Promise<void>((r) => server.listen(selfTest ? 0 : port, r));
  const { port: bound } = server.address() as AddressInfo;
  const stop = async () => {
    server.close();
    await encoder.close(); // finishes queued requests first
  };
  process.once('SIGTERM', () => void stop());
  if (selfTest === undefined) {
    console.log(`embedding service on http://localhost:${bound}/embed`);
    return;
  }
  const image = fs.readFileSync(selfTest);
  const answers = await Promise.all([0, 1, 2].map(async () => {
    const r = await fetch(`http://localhost:${bound}/embed`, { method: 'POST', body: image });
    return (await r.json()) as { features: number[] };
  }));
  const bad = await fetch(`http://localhost:${bound}/embed`, { method: 'POST', body: Buffer.from('not an image') });
  const width = answers[0]!.features.length;
  const norm = Math.sqrt(answers[0]!.features.reduce((s, v) => s + v * v, 0));
  // Rows of one batch may round differently in the last bits (the matrix kernels block rows by position).
  const spread = Math.max(...answers.map((a) => Math.max(...a.features.map((v, i) => Math.abs(v - answers[0]!.features[i]!)))));
  console.log(`features: ${width} numbers, norm ${norm.toFixed(4)}, the 3 requests agree to 1e-6: ${spread <= 1e-6}; a non-image got ${bad.status}; batches: ${encoder.stats().batches}`);
  await stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
