// `extrema serve` and createServer: features over HTTP equal `extrema embed`'s,
// classes equal `extrema predict`'s, every malformed request gets its 4xx
// without hurting the next one, a full queue says when to retry, metrics and
// probes answer, and SIGTERM drains the requests in flight before exit 0.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import * as et from '../../lib';
import { ExtremaModel, saveCheckpoint } from '../../lib/extrema';
import { VitClassifier, vitConfig } from '../../lib/nn';
import { embedToFile, predictToFile, saveClassifier, type Prediction } from '../../lib/eval';
import { loadSafetensors } from '../../lib/io/safetensors';
import { Encoder, NotAClassifierError, createServer } from '../../lib/serve';
import { tmpDir } from '../helpers/oracle';
import { noise, pngHeader } from '../helpers/images';

const MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
const dir = tmpDir('extrema-http-');
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const encoderFile = path.join(dir, 'tiny.safetensors');
{
  const model = new ExtremaModel({
    encoder: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 },
    projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5,
  }, { seed: 3 });
  saveCheckpoint(encoderFile, model);
  model.dispose();
}

const CLASSES = ['cat', 'dog', 'fish', 'bird'];
const classifierFile = path.join(dir, 'ft.safetensors');
{
  const encoder = vitConfig({ imgSize: 16, patchSize: 4, inChans: 3, embedDim: 32, depth: 1, numHeads: 2, pooling: 'mean', classAttentionLayers: 0 });
  const model = new VitClassifier({ encoder, numClasses: CLASSES.length }, { seed: 4 });
  // Weights far from their initialisation, so the probabilities are spread out and the comparison means something.
  et.noGrad(() => {
    const g = et.Generator.create(8);
    for (const p of model.parameters()) et.scope(() => p.add_(et.randn(p.shape, { generator: g }).mul(0.3)));
  });
  saveClassifier(classifierFile, model, { classes: CLASSES, metadata: { normalization: JSON.stringify({ mean: [0.4, 0.5, 0.6], std: [0.2, 0.3, 0.25] }) } });
  model.dispose();
}

const FORMATS = ['png', 'jpeg', 'webp'] as const;
const TYPES = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' } as const;

/** 8 images of mixed formats and sizes in a folder, in file order. */
const images = path.join(dir, 'images');
const files: { file: string; bytes: Buffer; type: string }[] = [];
async function makeImages(): Promise<void> {
  if (files.length > 0) return;
  fs.mkdirSync(images);
  for (let i = 0; i < 8; i++) {
    const [h, w] = [[16, 16], [20, 31], [37, 18], [16, 40]][i % 4]!;
    const format = FORMATS[i % 3]!;
    const img = sharp(noise(h, w, i + 1), { raw: { width: w, height: h, channels: 3 } });
    const bytes = format === 'png' ? await img.png().toBuffer() : format === 'jpeg' ? await img.jpeg({ quality: 90 }).toBuffer() : await img.webp({ quality: 90 }).toBuffer();
    const file = path.join(images, `${i}.${format === 'jpeg' ? 'jpg' : format}`);
    fs.writeFileSync(file, bytes);
    files.push({ file, bytes, type: TYPES[format] });
  }
}

function closeTo(got: number[][], expected: Float32Array, width: number, what: string): void {
  let worst = 0;
  got.forEach((row, i) => {
    assert.equal(row.length, width, `${what}: row ${i} has ${width} values`);
    row.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - expected[i * width + j]!)); });
  });
  assert.ok(worst <= 1e-6, `${what}: largest difference from embedToFile is ${worst}`);
}

interface EmbedAnswer { features: number[][]; width: number }
interface ErrorAnswer { error: { code: string; message: string } }

test('8 concurrent clients over HTTP get the features embedToFile writes; multipart and JSON too; probes and metrics answer', async () => {
  await makeImages();
  const out = path.join(dir, 'features.safetensors');
  await embedToFile({ checkpoint: encoderFile, images, out, batchSize: 3 });
  const { tensors } = loadSafetensors(out);
  const expected = tensors.get('features')!.toTypedArray<'float32'>();
  for (const t of tensors.values()) t.dispose();

  const encoder = await Encoder.open({ checkpoint: encoderFile, maxBatch: 8, maxWaitMs: 20 });
  const app = createServer(encoder, { logLevel: 'silent' });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const single = await Promise.all(files.map(async ({ bytes, type }) => {
      const r = await fetch(`${base}/v1/embed`, { method: 'POST', body: bytes, headers: { 'content-type': type } });
      assert.equal(r.status, 200, await r.clone().text());
      return (await r.json()) as EmbedAnswer;
    }));
    assert.ok(single.every((a) => a.width === 16 && a.features.length === 1));
    closeTo(single.map((a) => a.features[0]!), expected, 16, 'one image per request');

    const form = new FormData();
    files.forEach(({ bytes, type }, i) => form.append(`image${i}`, new Blob([bytes], { type }), `${i}.img`));
    form.append('note', 'text fields are ignored');
    const multi = await fetch(`${base}/v1/embed`, { method: 'POST', body: form });
    assert.equal(multi.status, 200, await multi.clone().text());
    closeTo(((await multi.json()) as EmbedAnswer).features, expected, 16, 'multipart');

    const json = await fetch(`${base}/v1/embed`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ images: files.map(({ bytes }, i) => (i === 0 ? 'data:image/png;base64,' : '') + bytes.toString('base64')) }),
    });
    assert.equal(json.status, 200, await json.clone().text());
    closeTo(((await json.json()) as EmbedAnswer).features, expected, 16, 'JSON base64');

    assert.deepEqual(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /extrema_http_requests_total\{route="\/v1\/embed",status_code="200"\} 10/);
    assert.match(metrics, /extrema_encoder_batch_size_count \d+/);
    assert.match(metrics, /extrema_encoder_batch_size_bucket\{le="8"\} \d+/);
    assert.match(metrics, /extrema_http_request_duration_seconds_bucket\{le="[\d.]+",route="\/v1\/embed"\}/);
    assert.match(metrics, /extrema_encoder_queue_depth 0/);
    // A wait of 20 ms for batches to fill: no request goes straight to the model thread.
    assert.match(metrics, /extrema_encoder_direct_requests_total 0/);
    assert.match(metrics, new RegExp(`extrema_encoder_main_thread_decoded_total ${encoder.stats().mainThreadDecoded}\\b`));
    const batches = Number(/extrema_encoder_batch_size_count (\d+)/.exec(metrics)![1]);
    assert.equal(batches, encoder.stats().batches, 'every batch observed once');
  } finally {
    await app.close();
    await encoder.close();
  }
});

test('classify gives the top-k of predictToFile; embed on a classifier gives its pooled features; an encoder refuses to classify', async () => {
  await makeImages();
  const out = path.join(dir, 'preds.jsonl');
  await predictToFile({ checkpoint: classifierFile, images, out, topK: 3, batchSize: 5 });
  const preds = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Prediction);
  // predictToFile lists a flat folder in path order, which is the order of `files`.
  assert.deepEqual(preds.map((p) => p.file), files.map((f) => f.file));

  const encoder = await Encoder.open({ checkpoint: classifierFile, maxBatch: 4, maxWaitMs: 10 });
  const app = createServer(encoder, { logLevel: 'silent' });
  try {
    assert.equal(encoder.kind, 'classifier');
    assert.deepEqual([encoder.numClasses, encoder.classes, encoder.width], [4, CLASSES, 32]);
    const answers = await Promise.all(files.map(async ({ bytes, type }) => {
      const r = await app.inject({ method: 'POST', url: '/v1/classify?topK=3', payload: bytes, headers: { 'content-type': type } });
      assert.equal(r.statusCode, 200, r.body);
      return (r.json() as { predictions: et.Classification[][] }).predictions[0]!;
    }));
    answers.forEach((top, i) => {
      const want = preds[i]!.top;
      assert.deepEqual(top.map((t) => [t.index, t.label]), want.map((t) => [t.class, t.name]), `image ${i}: classes best first`);
      top.forEach((t, j) => assert.ok(Math.abs(t.probability - want[j]!.probability) <= 1e-6, `image ${i}: ${t.probability} vs ${want[j]!.probability}`));
    });
    assert.ok(answers.some((top) => top[0]!.probability < 0.9), 'probabilities are spread out');
    const defaultK = await app.inject({ method: 'POST', url: '/v1/classify', payload: files[0]!.bytes, headers: { 'content-type': files[0]!.type } });
    assert.equal((defaultK.json() as { predictions: unknown[][] }).predictions[0]!.length, 4, 'the default top 5 is capped at the 4 classes');
    const badK = await app.inject({ method: 'POST', url: '/v1/classify?topK=0', payload: files[0]!.bytes, headers: { 'content-type': files[0]!.type } });
    assert.equal(badK.statusCode, 400);
    assert.match((badK.json() as ErrorAnswer).error.message, /topK/);
    const embedded = await app.inject({ method: 'POST', url: '/v1/embed', payload: files[1]!.bytes, headers: { 'content-type': files[1]!.type } });
    assert.equal((embedded.json() as EmbedAnswer).width, 32);
  } finally {
    await app.close();
    await encoder.close();
  }

  // One request at a time, each finds the model idle and is decoded in the model's thread: the same classes.
  const idle = await Encoder.open({ checkpoint: classifierFile });
  try {
    for (const [i, { bytes }] of files.entries()) {
      const top = await idle.classify(bytes, { topK: 3 });
      const want = preds[i]!.top;
      assert.deepEqual(top.map((t) => [t.index, t.label]), want.map((t) => [t.class, t.name]), `image ${i} alone: classes best first`);
      top.forEach((t, j) => assert.ok(Math.abs(t.probability - want[j]!.probability) <= 1e-6, `image ${i} alone: ${t.probability} vs ${want[j]!.probability}`));
    }
    assert.equal(idle.stats().direct, files.length, 'every lone request went straight to the model thread');
  } finally {
    await idle.close();
  }

  const plain = await Encoder.open({ checkpoint: encoderFile });
  const plainApp = createServer(plain, { logLevel: 'silent' });
  try {
    assert.equal(plain.kind, 'encoder');
    await assert.rejects(plain.classify(files[0]!.bytes), (e) => e instanceof NotAClassifierError && /not a fine-tuned classifier/.test(e.message));
    const r = await plainApp.inject({ method: 'POST', url: '/v1/classify', payload: files[0]!.bytes, headers: { 'content-type': files[0]!.type } });
    assert.equal(r.statusCode, 400);
    assert.equal((r.json() as ErrorAnswer).error.code, 'not_a_classifier');
  } finally {
    await plainApp.close();
    await plain.close();
  }
});

test('malformed requests get their 4xx, 1,000 of them leave memory bounded, and a good request still gets the right answer', async (t) => {
  await makeImages();
  const bodyLimit = 64 * 1024;
  const encoder = await Encoder.open({ checkpoint: encoderFile, maxBatch: 16, maxWaitMs: 1 });
  const app = createServer(encoder, { logLevel: 'silent', bodyLimit, maxImages: 4 });
  const good = files[1]!;
  const embed = (payload: string | Buffer, type?: string) => app.inject({ method: 'POST', url: '/v1/embed', payload, headers: type === undefined ? {} : { 'content-type': type } });
  const reference = (await embed(good.bytes, good.type)).json() as EmbedAnswer;
  const jpeg = files[1]!.bytes;
  const cases: [string, () => ReturnType<typeof embed>, number, string][] = [
    ['truncated JPEG', () => embed(jpeg.subarray(0, jpeg.length >> 1), 'image/jpeg'), 400, 'bad_image'],
    ['zero-byte body', () => embed(Buffer.alloc(0), 'image/png'), 400, 'bad_image'],
    ['wrong content type', () => embed('hello', 'text/plain'), 415, 'unsupported_media_type'],
    ['no content type', () => embed(good.bytes), 415, 'unsupported_media_type'],
    ['100000 x 100000 PNG header', () => embed(pngHeader(100_000, 100_000), 'image/png'), 400, 'bad_image'],
    ['JSON garbage', () => embed('{"images": [', 'application/json'), 400, 'bad_json'],
    ['JSON of the wrong shape', () => embed('{"image": "abc"}', 'application/json'), 400, 'bad_request'],
    ['bad base64', () => embed(JSON.stringify({ images: ['not*base64!'] }), 'application/json'), 400, 'bad_base64'],
    ['base64 of a non-image', () => embed(JSON.stringify({ images: [Buffer.from('plain text').toString('base64')] }), 'application/json'), 400, 'bad_image'],
    ['too many images', () => embed(JSON.stringify({ images: Array(5).fill(good.bytes.toString('base64')) }), 'application/json'), 413, 'too_many_images'],
    ['body over the limit', () => embed(Buffer.alloc(bodyLimit + 1, 1), 'application/octet-stream'), 413, 'body_too_large'],
  ];
  try {
    for (const [what, send, status, code] of cases) {
      const r = await send();
      assert.equal(r.statusCode, status, `${what}: ${r.body}`);
      const body = r.json() as ErrorAnswer;
      assert.equal(body.error.code, code, `${what}: ${r.body}`);
      assert.ok(body.error.message.length > 10, `${what}: a message`);
      const ok = await embed(good.bytes, good.type);
      assert.equal(ok.statusCode, 200, `after ${what}`);
      assert.deepEqual(ok.json(), reference, `after ${what}`);
    }
    assert.equal((await app.inject({ method: 'GET', url: '/v1/nowhere' })).statusCode, 404);

    global.gc?.();
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    for (let round = 0; round < 1000 / 20; round++) {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, k) => cases[(round * 20 + k) % cases.length]![1]()));
      for (const r of answers) assert.ok(r.statusCode >= 400 && r.statusCode < 500, `a malformed request got ${r.statusCode}: ${r.body}`);
    }
    global.gc?.();
    const grown = process.memoryUsage().rss - rss;
    const ok = await embed(good.bytes, good.type);
    assert.deepEqual(ok.json(), reference, 'after 1,000 malformed requests');
    t.diagnostic(`1,000 malformed requests in ${(performance.now() - started).toFixed(0)} ms; RSS grew by ${(grown / 1e6).toFixed(1)} MB`);
    assert.ok(grown < 100e6, `RSS grew by ${(grown / 1e6).toFixed(1)} MB over 1,000 malformed requests (${(performance.now() - started).toFixed(0)} ms)`);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /extrema_http_errors_total\{code="bad_image"\} \d+/);
  } finally {
    await app.close();
    await encoder.close();
  }
});

test('while the server drains, a new request gets 503 closing with Retry-After and Connection: close, and the probes still answer', async () => {
  await makeImages();
  const encoder = await Encoder.open({ checkpoint: encoderFile });
  const app = createServer(encoder, { logLevel: 'silent' });
  // Holds close() open after createServer's own preClose hook has begun the draining, while the server still listens.
  let draining!: () => void;
  const drainingBegan = new Promise<void>((resolve) => {
    draining = resolve;
  });
  let finishClose!: () => void;
  app.addHook('preClose', async () => {
    draining();
    await new Promise<void>((resolve) => {
      finishClose = resolve;
    });
  });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const { bytes, type } = files[0]!;
    assert.equal((await fetch(`${base}/v1/embed`, { method: 'POST', body: bytes, headers: { 'content-type': type } })).status, 200);
    const closed = app.close();
    await drainingBegan;
    const late = await fetch(`${base}/v1/embed`, { method: 'POST', body: bytes, headers: { 'content-type': type } });
    assert.equal(late.status, 503);
    assert.equal(late.headers.get('retry-after'), '1');
    assert.equal(late.headers.get('connection'), 'close');
    assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'closing');
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'the liveness probe still answers while draining');
    assert.equal((await fetch(`${base}/readyz`)).status, 503, 'the readiness probe says not ready');
    finishClose();
    await closed;
  } finally {
    await encoder.close();
  }
});

test('a full queue answers 503 with Retry-After; the accepted requests still succeed', async () => {
  await makeImages();
  const encoder = await Encoder.open({ checkpoint: encoderFile, maxBatch: 1, maxWaitMs: 0, queueLimit: 2 });
  const app = createServer(encoder, { logLevel: 'silent' });
  try {
    const { bytes, type } = files[2]!;
    const answers = await Promise.all(Array.from({ length: 40 }, () => app.inject({ method: 'POST', url: '/v1/embed', payload: bytes, headers: { 'content-type': type } })));
    const refused = answers.filter((r) => r.statusCode === 503);
    assert.ok(refused.length > 0, `40 requests against a queue of 2 all got through: ${answers.map((r) => r.statusCode).join(' ')}`);
    for (const r of refused) {
      assert.equal((r.json() as ErrorAnswer).error.code, 'queue_full');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${String(r.headers['retry-after'])}`);
    }
    assert.ok(answers.every((r) => r.statusCode === 200 || r.statusCode === 503));
    assert.ok(answers.some((r) => r.statusCode === 200));
  } finally {
    await app.close();
    await encoder.close();
  }
});

test('a client that disconnects cancels its queued request', async () => {
  await makeImages();
  const encoder = await Encoder.open({ checkpoint: encoderFile, maxBatch: 8, maxWaitMs: 3000 });
  const app = createServer(encoder, { logLevel: 'silent' });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const ac = new AbortController();
    const gone = fetch(`${base}/v1/embed`, { method: 'POST', body: files[0]!.bytes, headers: { 'content-type': files[0]!.type }, signal: ac.signal });
    while (encoder.stats().queued === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await assert.rejects(gone, { name: 'AbortError' });
    const started = performance.now();
    while (encoder.stats().queued > 0 && performance.now() - started < 2000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(encoder.stats().queued, 0, 'the request left the queue well before its batch was due');
    assert.equal(encoder.stats().batches, 0, 'and was never computed');
  } finally {
    await app.close();
    await encoder.close();
  }
});

test('extrema serve on port 0 prints its address, logs each request as JSON lines, and SIGTERM answers the requests in flight, then exits 0', async () => {
  await makeImages();
  // A long maxWaitMs keeps the requests queued when the signal arrives.
  const child = spawn(process.execPath, [MAIN, 'serve', '--checkpoint', encoderFile, '--port', '0', '--max-wait-ms', '1500', '--max-batch', '64', '--log-level', 'info', '--eager'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const base = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`serve exited with ${code} before listening: ${stderr}`)));
    });
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.match(stderr, /Linear layers packed, eager forward passes\)/, '--eager turns the operator traces off');
    const pending = files.map(async ({ bytes, type }) => {
      const r = await fetch(`${base}/v1/embed`, { method: 'POST', body: bytes, headers: { 'content-type': type } });
      return { status: r.status, body: (await r.json()) as EmbedAnswer };
    });
    await new Promise((r) => setTimeout(r, 400));
    child.kill('SIGTERM');
    const answers = await Promise.all(pending);
    assert.deepEqual(answers.map((a) => a.status), files.map(() => 200), stderr);
    assert.ok(answers.every((a) => a.body.features[0]!.length === 16));
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: draining/);
    // pino's JSON lines: each request logged when it came and when it was answered, under one request id.
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg?: string; reqId?: string; req?: { method: string; url: string }; res?: { statusCode: number } });
    const embeds = lines.filter((l) => l.msg === 'incoming request' && l.req?.method === 'POST' && l.req.url === '/v1/embed');
    assert.equal(embeds.length, files.length, stdout);
    for (const e of embeds) {
      const done = lines.find((l) => l.msg === 'request completed' && l.reqId === e.reqId);
      assert.equal(done?.res?.statusCode, 200, `the answer to ${e.reqId} is logged: ${stdout}`);
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
