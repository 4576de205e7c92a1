// Issue 12's serving benchmark: `extrema serve` under load, against the same
// encoder behind onnxruntime-node (computing on the event loop's thread, and
// in a worker thread) and behind a minimal FastAPI + PyTorch server, in one
// run and one harness. The weights are exported to ONNX by
// bench/serve_export.py (pixels in, features out); every server answers
// POST /v1/embed with a raw PNG body. Each server runs in a process of its
// own, all started up front and measured in turn at each concurrency,
// so that a drift in the machine's load hits all of them alike; the load
// generator (autocannon, programmatic) runs here.
//   node dist/bench/serve.js [--checkpoint FILE] [--duration 10] [--concurrency 1,8,32]
//     [--threads 2] [--max-batch 32] [--max-wait-ms 0] [--servers extrema,ort,ort-worker,fastapi]
//     [--rounds 1] [--out FILE]
// Python needs torch (as for the other benches) plus onnx, onnxruntime,
// onnxscript, fastapi and uvicorn, looked for also in <repo>/.bench-py
// (pip install --target .bench-py ...).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { freePort } from '../test/helpers/net';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { loadIdxImages } from '../lib/data/idx';
import { decodeImage } from '../lib/data/image-folder';
import { tmpDir } from '../test/helpers/oracle';
import { benchPythonEnv, demoCheckpoint } from './serve-setup';

const ROOT = path.resolve(__dirname, '..', '..');
const IMAGES = path.join(ROOT, 'examples', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');

// autocannon ships no types; this is the part of its API the bench uses.
interface CannonRequest { method: string; path: string; headers: Record<string, string>; body: Buffer }
interface CannonOptions {
  url: string; connections: number; duration: number; timeout: number;
  requests: { setupRequest(req: CannonRequest): CannonRequest }[];
}
interface CannonResult {
  duration: number; errors: number; timeouts: number; non2xx: number; '2xx': number;
  latency: { p50: number; p99: number };
}
const autocannon = require('autocannon') as (o: CannonOptions) => Promise<CannonResult>;

type ServerName = 'extrema' | 'ort' | 'ort-worker' | 'fastapi';
const LABEL: Record<ServerName, string> = {
  extrema: 'extrema serve', ort: 'onnxruntime-node', 'ort-worker': 'onnxruntime-node, worker thread', fastapi: 'FastAPI + PyTorch',
};

// ---------------------------------------------------------------------------
// The onnxruntime-node servers (this file run with --role ort-server).
//
// Two of them, the same but for where session.run computes. onnxruntime-node
// computes synchronously on the calling thread (its run() is a setImmediate
// around the native call), so the plain server, as most Node services would
// write it, blocks its event loop for each batch. The worker one runs the
// session in a worker thread, as `extrema serve` runs its model: the event
// loop stays free, at the cost of the two thread hops a batch then takes.
// Both report their event loop's delay (GET /stats), measured like
// prom-client's nodejs_eventloop_lag_* gauges that `extrema serve` exports.

type OrtRun = (input: Uint8Array, n: number) => Promise<Float32Array>;

/**
 * prom-client's default eventLoopMonitoringPrecision, which `extrema serve`
 * keeps. Node's monitorEventLoopDelay records the whole interval between two
 * of its ticks, so a loop that is never late reads this much; lateness is
 * what is over it.
 */
const LOOP_RESOLUTION_MS = 10;
interface OrtThreadInit { model: string; threads: number; size: number; channels: 1 | 3 }

async function ortSession(model: string, threads: number, size: number, channels: 1 | 3): Promise<OrtRun> {
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  return async (input, n) => (await session.run({ pixels: new ort.Tensor('uint8', input, [n, size, size, channels]) })).features!.data as Float32Array;
}

/** The worker thread of the off-thread server: batches in, features out, one at a time. */
async function ortThread(init: OrtThreadInit): Promise<void> {
  const port = parentPort!;
  const run = await ortSession(init.model, init.threads, init.size, init.channels);
  port.on('message', (m: { input: Uint8Array; n: number }) => {
    run(m.input, m.n).then((f) => {
      const own = new Float32Array(f);
      port.postMessage({ features: own }, [own.buffer]);
    }, (e: unknown) => port.postMessage({ error: String(e) }));
  });
  port.postMessage({ ready: true });
}

/** A session in a worker thread; like session.run, one batch at a time (the caller sends the next after this one's answer). */
async function ortInWorker(init: OrtThreadInit): Promise<OrtRun> {
  const worker = new Worker(__filename, { workerData: init });
  worker.unref();
  const answers: ((m: { features?: Float32Array; error?: string; ready?: true }) => void)[] = [];
  worker.on('message', (m) => answers.shift()?.(m));
  worker.on('error', (e) => {
    console.error(e);
    process.exit(1);
  });
  await new Promise((resolve) => answers.push(resolve));
  return (input, n) => new Promise<Float32Array>((resolve, reject) => {
    answers.push((m) => (m.features !== undefined ? resolve(m.features) : reject(new Error(m.error))));
    worker.postMessage({ input, n }, [input.buffer as ArrayBuffer]);
  });
}

async function ortServer(model: string, port: number, threads: number, maxBatch: number, size: number, channels: 1 | 3, inWorker: boolean): Promise<void> {
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const run = inWorker ? await ortInWorker({ model, threads, size, channels }) : await ortSession(model, threads, size, channels);
  // As prom-client measures nodejs_eventloop_lag_* in `extrema serve`, so all servers measure alike.
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const item = size * size * channels;
  interface Pending { pixels: Uint8Array; resolve(f: Float32Array): void; reject(e: unknown): void }
  const queue: Pending[] = [];
  const batchSizes: number[] = [];
  let scheduled = false;

  // Greedy micro-batching: whatever has queued up runs as one batch as soon
  // as the model is free, with no wait to fill it. Requests that arrive while
  // a batch computes (here or in the worker) form the next one.
  const runBatch = async (): Promise<void> => {
    const batch = queue.splice(0, maxBatch);
    batchSizes[batch.length] = (batchSizes[batch.length] ?? 0) + 1;
    const n = batch.length;
    const input = new Uint8Array(n * item);
    batch.forEach((p, i) => input.set(p.pixels, i * item));
    try {
      const features = await run(input, n);
      const width = features.length / n;
      batch.forEach((p, i) => p.resolve(features.subarray(i * width, (i + 1) * width)));
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
    if (queue.length > 0) setImmediate(() => void runBatch());
    else scheduled = false;
  };
  const embed = (pixels: Uint8Array) => new Promise<Float32Array>((resolve, reject) => {
    queue.push({ pixels, resolve, reject });
    if (!scheduled) {
      scheduled = true;
      setImmediate(() => void runBatch());
    }
  });
  const warm = await embed(new Uint8Array(item));

  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { ok: true });
    if (req.method === 'GET' && req.url === '/stats') {
      // The loop's delay since the last /stats, as prom-client resets its gauges at each scrape.
      const body = { batchSizes: Array.from(batchSizes, (v) => v ?? 0), loopMaxMs: Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS) };
      loop.reset();
      return send(res, 200, body);
    }
    if (req.method !== 'POST' || req.url !== '/v1/embed') return send(res, 404, { error: { code: 'not_found' } });
    if (!/^(image\/(png|jpeg|webp)|application\/octet-stream)\b/.test(req.headers['content-type'] ?? '')) {
      req.resume();
      return send(res, 415, { error: { code: 'unsupported_media_type' } });
    }
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (c: Buffer) => {
      length += c.length;
      if (length > 20 * 2 ** 20) {
        send(res, 413, { error: { code: 'body_too_large' } });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      // The library's decoder, as `extrema embed` and the Encoder's threads use it.
      decodeImage(Buffer.concat(chunks), { channels, size, maxPixels: 40e6 }).then(
        (img) => embed(img.data).then(
          (f) => send(res, 200, { features: [Array.from(f)], width: f.length }),
          (e: unknown) => send(res, 500, { error: { code: 'internal', message: String(e) } })),
        (e: unknown) => send(res, 400, { error: { code: 'bad_image', message: (e as Error).message } }));
    });
  });
  server.listen(port, '127.0.0.1', () => {
    const a = server.address() as net.AddressInfo;
    process.stderr.write(`listening on http://127.0.0.1:${a.port} (onnxruntime-node ${ort.env.versions.common}${inWorker ? ', in a worker thread' : ''}, ${warm.length} features)\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    // autocannon's keep-alive sockets would otherwise hold the close open.
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------
// The harness.

interface Batching { mean: number; dist: string }
interface Row {
  server: ServerName; concurrency: number; rps: number; p50: number; p99: number;
  /** req/s of each round, in order: a ratio between two servers is taken round by round. */
  roundRps: number[];
  errors: number; non2xx: number; batching: Batching | null;
  /** The longest the server's event loop was late during the runs, in ms, over LOOP_RESOLUTION_MS (null: not measured). */
  loopMaxMs: number | null;
}
/** Batches per bucket of bucketBounds(maxBatch), and the images in them, since the server started. */
interface BatchCounts { counts: number[]; images: number }
/** What a server reports between runs: its batches so far, and its event loop's delay since the last snapshot. */
interface Snapshot { batches: BatchCounts | null; loopMaxMs: number | null }
interface Running { name: ServerName; url: string; child: ChildProcess; snapshot(): Promise<Snapshot> }

const lines: string[] = [];
function log(line = ''): void {
  lines.push(line);
  console.log(line);
}


function request(url: string, method: 'GET' | 'POST', body?: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { 'content-type': 'image/png', 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts a server process and resolves once it prints its address and answers /healthz. */
async function start(name: ServerName, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no address after 180 s\n${stderr}`)), 180_000);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${String(code)} before listening\n${stderr}`));
    });
  });
  // uvicorn prints before it binds; the others after, but one check serves all.
  for (let t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 200))) {
    const ok = await request(`${url}/healthz`, 'GET').then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() - t0 > 60_000) throw new Error(`${name}: /healthz did not answer 200 within 60 s`);
  }
  child.stderr!.removeAllListeners('data');
  child.stderr!.resume();
  return { url, child };
}

/** extrema_encoder_batch_size from /metrics, its cumulative buckets undone (the +Inf bucket is empty: no batch exceeds maxBatch). */
function histogramCounts(metrics: string): BatchCounts {
  const cumulative: number[] = [];
  for (const m of metrics.matchAll(/^extrema_encoder_batch_size_bucket\{le="(?!\+Inf)[^"]+"\} (\d+)/gm)) cumulative.push(Number(m[1]));
  const sum = /^extrema_encoder_batch_size_sum (\S+)/m.exec(metrics);
  return { counts: cumulative.map((c, i) => c - (i > 0 ? cumulative[i - 1]! : 0)), images: Number(sum?.[1] ?? 0) };
}

/** Powers of two up to maxBatch, as lib/serve/metrics.ts buckets the batch sizes. */
function bucketBounds(maxBatch: number): number[] {
  const out: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) out.push(b);
  out.push(maxBatch);
  return out;
}

function batching(bounds: number[], before: BatchCounts, after: BatchCounts): Batching | null {
  const counts = after.counts.map((n, i) => n - (before.counts[i] ?? 0));
  const sum = after.images - before.images;
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const parts: string[] = [];
  bounds.forEach((hi, i) => {
    const lo = i === 0 ? 1 : bounds[i - 1]! + 1;
    const n = counts[i] ?? 0;
    if (n > 0) parts.push(`${lo === hi ? hi : `${lo}-${hi}`}: ${((100 * n) / total).toFixed(0)}%`);
  });
  return { mean: sum / total, dist: parts.join(', ') };
}

/** The middle value (the lower of the two middles of an even count). */
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!;

/**
 * One table: a row per server and concurrency, then extrema's ratios to each
 * other server (req/s: above 1.00x extrema serves more; latency: below 1.00x
 * extrema answers sooner).
 */
function table(rows: Row[], concurrencies: number[], rounds: number): void {
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');
  // The machine's speed drifts by more than 10% over minutes; two servers measured back to back
  // within a round share most of it, so the median of the per-round ratios is the steadier figure.
  const byRound = rounds > 1;
  log(`| concurrency | server | req/s | p50 ms | p99 ms | event loop late, max ms | mean batch | errors / non-2xx |${byRound ? ' req/s, median of the rounds\' ratios (range) |' : ''}`);
  log(`|---|---|---|---|---|---|---|---|${byRound ? '---|' : ''}`);
  for (const c of concurrencies) {
    const at = rows.filter((r) => r.concurrency === c);
    for (const r of at) {
      log(`| ${c} | ${LABEL[r.server]} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.loopMaxMs?.toFixed(1) ?? '-'} | ${r.batching?.mean.toFixed(2) ?? '-'} | ${r.errors} / ${r.non2xx} |${byRound ? ' |' : ''}`);
    }
    const ours = at.find((r) => r.server === 'extrema');
    if (ours === undefined) continue;
    for (const other of at.filter((r) => r.server !== 'extrema')) {
      const perRound = ours.roundRps.map((v, i) => v / other.roundRps[i]!);
      const spread = `${median(perRound).toFixed(2)}x (${Math.min(...perRound).toFixed(2)}-${Math.max(...perRound).toFixed(2)})`;
      log(`| | ratio extrema / ${LABEL[other.server]} | ${ratio(ours.rps, other.rps)} | ${ratio(ours.p50, other.p50)} | ${ratio(ours.p99, other.p99)} | | | |${byRound ? ` ${spread} |` : ''}`);
    }
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      role: { type: 'string' }, model: { type: 'string' }, port: { type: 'string', default: '0' },
      size: { type: 'string' }, channels: { type: 'string' },
      checkpoint: { type: 'string' }, duration: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '1,8,32' }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '1' },
      'in-worker': { type: 'boolean', default: false },
      'max-batch': { type: 'string', default: '32' }, 'max-wait-ms': { type: 'string', default: '0' },
      servers: { type: 'string', default: 'extrema,ort,ort-worker,fastapi' }, images: { type: 'string', default: '64' },
      out: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new Error(`unexpected arguments: ${positionals.join(' ')}`);
  const threads = Number(values.threads);
  const maxBatch = Number(values['max-batch']);
  if (values.role === 'ort-server') {
    return ortServer(values.model!, Number(values.port), threads, maxBatch, Number(values.size), Number(values.channels) as 1 | 3, values['in-worker']);
  }
  const duration = Number(values.duration);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a positive integer, not ${values.rounds}`);
  const concurrencies = values.concurrency.split(',').map(Number);
  const wanted = values.servers.split(',') as ServerName[];
  for (const s of wanted) if (!(s in LABEL)) throw new Error(`unknown server ${s} (${Object.keys(LABEL).join(', ')})`);
  const date = new Date().toISOString().slice(0, 10);
  const out = values.out ?? path.join(ROOT, 'bench', 'results', `serve-${date}.txt`);

  const dir = tmpDir('extrema-bench-serve-');
  const running: Running[] = [];
  try {
    let checkpoint = values.checkpoint;
    let about = checkpoint ?? '';
    if (checkpoint === undefined) ({ file: checkpoint, about } = demoCheckpoint(dir));

    // Distinct PNGs cycled by the clients, so no server can answer from a cache.
    const idx = loadIdxImages(IMAGES);
    const count = Math.min(Number(values.images), idx.count);
    const pixels = idx.height * idx.width;
    const pngs = await Promise.all(Array.from({ length: count }, (_, i) =>
      sharp(Buffer.from(idx.images.subarray(i * pixels, (i + 1) * pixels)), { raw: { width: idx.width, height: idx.height, channels: 1 } }).png().toBuffer()));

    const pyEnv = benchPythonEnv();
    const python = process.env.PYTHON || 'python3';
    const pyHas = (mods: string) => spawnSync(python, ['-c', `import ${mods}`], { env: pyEnv, stdio: 'ignore' }).status === 0;

    log(`machine: ${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start; node ${process.version}; ${date}`);
    log(`checkpoint: ${about}; ${count} distinct ${idx.height}x${idx.width} PNGs (${path.basename(IMAGES)}), cycled`);
    log(`each server: ${threads} compute thread${threads === 1 ? '' : 's'}; extrema --max-batch ${maxBatch} --max-wait-ms ${values['max-wait-ms']}; autocannon ${duration} s per run after a 2 s warm-up, concurrency ${concurrencies.join(', ')}${rounds > 1 ? `, ${rounds} rounds alternating the servers (req/s over all rounds, p50 and p99 their medians)` : ''}`);

    // The ONNX export, checked against PyTorch inside the script.
    let onnx: { file: string; size: number; channels: 1 | 3 } | null = null;
    if (wanted.includes('ort') || wanted.includes('ort-worker')) {
      if (!pyHas('onnx, onnxruntime, onnxscript')) {
        log('onnxruntime-node: skipped (python3 lacks onnx, onnxruntime or onnxscript; pip install --target .bench-py onnx onnxruntime onnxscript)');
      } else {
        const file = path.join(dir, 'model.onnx');
        const py = spawnSync(python, [path.join(ROOT, 'bench', 'serve_export.py'), checkpoint, file, String(threads)], { env: pyEnv, encoding: 'utf8' });
        if (py.status !== 0) {
          log(`onnxruntime-node: skipped, the export failed:\n${py.stderr}`);
        } else {
          const r = JSON.parse(py.stdout.trim().split('\n').pop()!) as { torch: string; onnxruntime: string; opset: number; maxAbsDiff: number; size: number; channels: 1 | 3 };
          log(`ONNX export: torch ${r.torch} (torch.onnx, dynamo), opset ${r.opset}; onnxruntime (Python ${r.onnxruntime}) vs PyTorch: max abs difference ${r.maxAbsDiff.toExponential(1)}`);
          onnx = { file, size: r.size, channels: r.channels };
        }
      }
    }
    const fastapiOk = wanted.includes('fastapi') && pyHas('fastapi, uvicorn, PIL');
    if (wanted.includes('fastapi') && !fastapiOk) log('FastAPI: skipped (python3 lacks fastapi, uvicorn or PIL; pip install --target .bench-py fastapi uvicorn)');

    // All servers up before any measuring.
    if (wanted.includes('extrema')) {
      const { url, child } = await start('extrema', process.execPath, [CLI, 'serve', '--checkpoint', checkpoint, '--port', '0', '--log-level', 'silent',
        '--threads', String(threads), '--max-batch', String(maxBatch), '--max-wait-ms', String(values['max-wait-ms'])],
        { ...process.env, OMP_NUM_THREADS: String(threads) });
      running.push({
        name: 'extrema', url, child,
        snapshot: async () => {
          const text = (await request(`${url}/metrics`, 'GET')).text;
          const max = /^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text);
          return { batches: histogramCounts(text), loopMaxMs: max === null ? null : Math.max(0, Number(max[1]) * 1000 - LOOP_RESOLUTION_MS) };
        },
      });
    }
    for (const name of ['ort', 'ort-worker'] as const) {
      if (onnx === null || !wanted.includes(name)) continue;
      const { url, child } = await start(name, process.execPath, [__filename, '--role', 'ort-server', '--model', onnx.file, '--threads', String(threads),
        '--max-batch', String(maxBatch), '--size', String(onnx.size), '--channels', String(onnx.channels), ...(name === 'ort-worker' ? ['--in-worker'] : [])],
        process.env);
      running.push({
        name, url, child,
        snapshot: async () => {
          const stats = JSON.parse((await request(`${url}/stats`, 'GET')).text) as { batchSizes: number[]; loopMaxMs: number };
          const bounds = bucketBounds(maxBatch);
          const counts = bounds.map(() => 0);
          let images = 0;
          stats.batchSizes.forEach((n, size) => {
            if (n === 0) return;
            counts[bounds.findIndex((b) => size <= b)]! += n;
            images += n * size;
          });
          return { batches: { counts, images }, loopMaxMs: stats.loopMaxMs };
        },
      });
    }
    if (fastapiOk) {
      const port = await freePort();
      const { url, child } = await start('fastapi', python, [path.join(ROOT, 'bench', 'serve_fastapi.py'), checkpoint, String(port), String(threads)],
        { ...pyEnv, OMP_NUM_THREADS: String(threads) });
      running.push({ name: 'fastapi', url, child, snapshot: () => Promise.resolve({ batches: null, loopMaxMs: null }) });
    }

    // Same features from every server, on a few images.
    const embedOne = async (url: string, png: Buffer): Promise<number[]> => {
      const r = await request(`${url}/v1/embed`, 'POST', png);
      if (r.status !== 200) throw new Error(`${url}: ${r.status} ${r.text}`);
      return (JSON.parse(r.text) as { features: number[][] }).features[0]!;
    };
    const reference = running[0]!;
    const check = pngs.slice(0, 8);
    const want = await Promise.all(check.map((p) => embedOne(reference.url, p)));
    for (const s of running.slice(1)) {
      let diff = 0;
      for (let i = 0; i < check.length; i++) {
        const got = await embedOne(s.url, check[i]!);
        got.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - want[i]![j]!))));
      }
      log(`${LABEL[s.name]} vs ${LABEL[reference.name]}: features of ${check.length} images agree to ${diff.toExponential(1)} (max abs difference)`);
    }

    let next = 0;
    const load = (url: string, connections: number, seconds: number) => autocannon({
      url: `${url}/v1/embed`, connections, duration: seconds, timeout: 30,
      requests: [{
        setupRequest: (req) => ({ ...req, method: 'POST', path: '/v1/embed', headers: { 'content-type': 'image/png' }, body: pngs[next++ % pngs.length]! }),
      }],
    });

    for (const s of running) await load(s.url, Math.max(...concurrencies), 2);
    const rows: Row[] = [];
    for (const c of concurrencies) {
      const runs = new Map<ServerName, { r: CannonResult; loopMaxMs: number | null }[]>(running.map((s) => [s.name, []]));
      // Each server's batches over all its rounds: only its own load moves its counts.
      const first = new Map<ServerName, Snapshot>();
      const last = new Map<ServerName, Snapshot>();
      // Rounds alternate the servers, so that a slow minute of the machine falls on all of them.
      for (let round = 0; round < rounds; round++) {
        for (const s of running) {
          const before = await s.snapshot();
          const r = await load(s.url, c, duration);
          const after = await s.snapshot();
          // FastAPI runs one forward pass per request by construction.
          const b = s.name === 'fastapi' ? { mean: 1, dist: '1: 100%' } : before.batches && after.batches ? batching(bucketBounds(maxBatch), before.batches, after.batches) : null;
          runs.get(s.name)!.push({ r, loopMaxMs: after.loopMaxMs });
          if (!first.has(s.name)) first.set(s.name, before);
          last.set(s.name, after);
          log(`${LABEL[s.name]}, concurrency ${c}${rounds > 1 ? `, round ${round + 1}` : ''}: ${(r['2xx'] / r.duration).toFixed(1)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, `
            + `errors ${r.errors + r.timeouts}, non-2xx ${r.non2xx}; batch sizes ${b === null ? 'n/a' : `${b.dist} (mean ${b.mean.toFixed(2)})`}`
            + `; event loop late by ${after.loopMaxMs === null ? 'n/a' : `${after.loopMaxMs.toFixed(1)} ms`} at most`);
        }
      }
      for (const s of running) {
        const all = runs.get(s.name)!;
        const loops = all.map((x) => x.loopMaxMs).filter((v): v is number => v !== null);
        const [before, after] = [first.get(s.name)!.batches, last.get(s.name)!.batches];
        rows.push({
          server: s.name, concurrency: c,
          rps: all.reduce((t, x) => t + x.r['2xx'], 0) / all.reduce((t, x) => t + x.r.duration, 0),
          roundRps: all.map((x) => x.r['2xx'] / x.r.duration),
          p50: median(all.map((x) => x.r.latency.p50)), p99: median(all.map((x) => x.r.latency.p99)),
          errors: all.reduce((t, x) => t + x.r.errors + x.r.timeouts, 0), non2xx: all.reduce((t, x) => t + x.r.non2xx, 0),
          batching: s.name === 'fastapi' ? { mean: 1, dist: '1: 100%' } : before && after ? batching(bucketBounds(maxBatch), before, after) : null,
          loopMaxMs: loops.length === 0 ? null : Math.max(...loops),
        });
      }
    }
    log();
    table(rows, concurrencies, rounds);
  } finally {
    for (const s of running) s.child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, lines.join('\n') + '\n');
  }
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
} else {
  // The off-thread onnxruntime-node server's worker (ortInWorker).
  void ortThread(workerData as OrtThreadInit);
}
