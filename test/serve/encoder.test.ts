// The serving Encoder: features equal to `extrema embed`'s, micro-batching,
// an event loop that stays free while the worker computes, and the error
// paths a service meets (full queue, abort, timeout, bad bodies, close).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as et from '../../lib';
import { ExtremaModel, saveCheckpoint, type ExtremaConfigInput } from '../../lib/extrema';
import { embedToFile } from '../../lib/eval/embed';
import { loadSafetensors } from '../../lib/io/safetensors';
import { ClosedError, createServer, Encoder, InputError, QueueFullError, TimeoutError } from '../../lib/serve';
import { LANE_INPUT_BYTES } from '../../lib/serve/lane';
import { tmpDir } from '../helpers/oracle';
import { noise, pngHeader } from '../helpers/images';

const TINY: ExtremaConfigInput = {
  encoder: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 16, depth: 1, numHeads: 2, classAttentionLayers: 1 },
  projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5,
};

const dir = tmpDir('extrema-serve-');
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

function checkpoint(name: string, config: ExtremaConfigInput, seed: number): string {
  const file = path.join(dir, `${name}.safetensors`);
  const model = new ExtremaModel(config, { seed });
  try {
    saveCheckpoint(file, model);
  } finally {
    model.dispose();
  }
  return file;
}

async function encodeImage(h: number, w: number, seed: number, format: 'png' | 'jpeg' | 'webp'): Promise<Buffer> {
  const img = sharp(noise(h, w, seed), { raw: { width: w, height: h, channels: 3 } });
  return format === 'png' ? img.png().toBuffer() : format === 'jpeg' ? img.jpeg({ quality: 90 }).toBuffer() : img.webp({ quality: 90 }).toBuffer();
}

const tiny = checkpoint('tiny', TINY, 3);

/**
 * `count` images in a folder of their own, in the three formats, at sizes
 * around and above the model's 16 px (resize and crop in both orientations,
 * and the no-op path); their bytes in path order, and the features
 * embedToFile writes for the folder.
 */
async function imageFolder(name: string, count: number, seed: number, batchSize: number): Promise<{ files: string[]; bodies: Buffer[]; expected: Float32Array }> {
  const imgs = path.join(dir, name);
  fs.mkdirSync(imgs);
  const files: string[] = [];
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const [h, w] = [[16, 16], [20, 31], [37, 18], [16, 40]][i % 4]!;
    const format = (['png', 'jpeg', 'webp'] as const)[i % 3]!;
    const file = path.join(imgs, `${String(i).padStart(2, '0')}.${format === 'jpeg' ? 'jpg' : format}`);
    const body = await encodeImage(h, w, seed + i, format);
    fs.writeFileSync(file, body);
    files.push(file);
    bodies.push(body);
  }
  const out = path.join(dir, `${name}.safetensors`);
  await embedToFile({ checkpoint: tiny, images: imgs, out, batchSize });
  const { tensors } = loadSafetensors(out);
  const expected = tensors.get('features')!.toTypedArray<'float32'>();
  for (const x of tensors.values()) x.dispose();
  return { files, bodies, expected };
}

test('features of 20 concurrent requests equal what embedToFile writes for the same files, in fewer batches than requests', async (t) => {
  const { files, expected } = await imageFolder('imgs', 20, 1, 7);
  const encoder = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 20 });
  try {
    assert.equal(encoder.width, 16);
    assert.ok(encoder.packedLinears > 0, 'the Linear layers run packed by default, as embedToFile\'s');
    const got = await Promise.all(files.map((f) => encoder.embed(fs.readFileSync(f))));
    let worst = 0;
    got.forEach((row, i) => {
      assert.ok(row instanceof Float32Array && row.length === 16, `row ${i} is 16 floats`);
      for (let j = 0; j < 16; j++) worst = Math.max(worst, Math.abs(row[j]! - expected[i * 16 + j]!));
    });
    t.diagnostic(`largest difference from embedToFile: ${worst}; batch sizes ${JSON.stringify(encoder.stats().batchSizes)}`);
    // Batches are composed differently from embedToFile's, so values agree to float rounding only.
    assert.ok(worst <= 1e-6, `largest difference from embedToFile is ${worst}`);
    const s = encoder.stats();
    assert.equal(s.requests, 20);
    // The seven PNGs are plain and small: decoded on the main thread, the 37 x 18 and 20 x 31 ones then resized on the decoding thread.
    assert.equal(s.mainThreadDecoded, 7);
    assert.ok(s.batches < s.requests && s.batches >= 3, `20 requests in ${s.batches} batches (sizes ${JSON.stringify(s.batchSizes)})`);
    assert.equal(s.queued + s.inFlight, 0);
  } finally {
    await encoder.close();
  }
  // normalize: true gives the same rows scaled to unit length.
  const unit = await Encoder.open({ checkpoint: tiny, normalize: true });
  try {
    const row = await unit.embed(fs.readFileSync(files[1]!));
    const e = expected.subarray(16, 32);
    const n = Math.hypot(...e);
    for (let j = 0; j < 16; j++) assert.ok(Math.abs(row[j]! - e[j]! / n) < 1e-6);
  } finally {
    await unit.close();
  }
});

test('a request that finds the model idle is decoded in the model\'s thread: the features of embedToFile, bad images refused alike', async (t) => {
  const { bodies, expected } = await imageFolder('idle-imgs', 6, 40, 4);
  const worstOf = (rows: Float32Array[]) => Math.max(...rows.flatMap((row, i) => Array.from(row, (v, j) => Math.abs(v - expected[i * 16 + j]!))));

  const encoder = await Encoder.open({ checkpoint: tiny }); // maxWaitMs 0: the direct route is on
  try {
    const alone: Float32Array[] = [];
    for (const body of bodies) alone.push(await encoder.embed(body));
    assert.equal(encoder.stats().direct, 6, 'each lone request went straight to the model thread');
    assert.ok(worstOf(alone) <= 1e-6, `lone requests: largest difference from embedToFile is ${worstOf(alone)}`);

    // A burst: the first finds the model idle, the rest take the decoding thread and are batched.
    // 24 requests (each image 4 times): with 6, a fast forward pass could finish before
    // each next decoded image arrived, and every batch would hold one (it happened once).
    const burst = await Promise.all(Array.from({ length: 24 }, (_, i) => encoder.embed(bodies[i % 6]!)));
    const s = encoder.stats();
    t.diagnostic(`burst: ${s.direct - 6} direct, batch sizes ${JSON.stringify(s.batchSizes)}`);
    assert.equal(s.direct, 7, 'only the first request of the burst went direct');
    assert.equal(s.mainThreadDecoded, 7, 'the burst\'s other 7 PNGs were decoded on the main thread');
    assert.ok(s.batches < 6 + 24, `the rest shared batches (${s.batches} batches for 30 requests)`);
    const burstWorst = Math.max(...[0, 6, 12, 18].map((from) => worstOf(burst.slice(from, from + 6))));
    assert.ok(burstWorst <= 1e-6, `burst: largest difference from embedToFile is ${burstWorst}`);

    // Bad images sent alone are refused by the model thread with the decoding thread's messages, and the encoder goes on.
    const truncated = bodies[0]!.subarray(0, Math.floor(bodies[0]!.length / 2));
    await assert.rejects(encoder.embed(truncated), (e) => e instanceof InputError && /Cannot decode image \(\d+ bytes\)/.test(e.message));
    await assert.rejects(encoder.embed(pngHeader(100_000, 100_000)), (e) => e instanceof InputError && /pixel limit/.test(e.message));
    await assert.rejects(encoder.embed(Buffer.from('not an image at all')), InputError);
    assert.equal(encoder.stats().direct, 10);
    assert.deepEqual(await encoder.embed(bodies[1]!), alone[1], 'a good request after the refusals gets the same features');
    const px = noise(20, 24, 4);
    assert.deepEqual(await encoder.embedPixels(px, 20, 24, 3), await encoder.embed(await sharp(px, { raw: { width: 24, height: 20, channels: 3 } }).png().toBuffer()),
      'raw pixels sent alone give the features of the same pixels as a PNG');
    const metrics = await createServer(encoder, { logLevel: 'silent' }).inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, new RegExp(`extrema_encoder_direct_requests_total ${encoder.stats().direct}\\b`));
    assert.match(metrics.body, new RegExp(`extrema_encoder_main_thread_decoded_total ${encoder.stats().mainThreadDecoded}\\b`));
  } finally {
    await encoder.close();
  }
});

test('a lone image too big for the shared-memory lane goes to the model thread as a message, with embedToFile\'s features', async () => {
  const imgs = path.join(dir, 'big');
  fs.mkdirSync(imgs);
  // Noise does not compress: 320 x 320 RGB is about 300 KB of PNG, over the lane's 256 KB.
  const body = await encodeImage(320, 320, 77, 'png');
  assert.ok(body.length > LANE_INPUT_BYTES, `${body.length} bytes`);
  const small = await encodeImage(20, 30, 78, 'png');
  fs.writeFileSync(path.join(imgs, 'a.png'), body);
  fs.writeFileSync(path.join(imgs, 'b.png'), small);
  const out = path.join(dir, 'big.safetensors');
  await embedToFile({ checkpoint: tiny, images: imgs, out, batchSize: 2 });
  const { tensors } = loadSafetensors(out);
  const expected = tensors.get('features')!.toTypedArray<'float32'>();
  for (const x of tensors.values()) x.dispose();
  const encoder = await Encoder.open({ checkpoint: tiny });
  try {
    // Alone, one after the other: the big one as a message, the small one through the lane, then the big one again.
    const rows = [await encoder.embed(body), await encoder.embed(small), await encoder.embed(body)];
    assert.equal(encoder.stats().direct, 3);
    rows.forEach((row, i) => {
      const e = expected.subarray((i % 2) * 16, (i % 2) * 16 + 16);
      const worst = Math.max(...Array.from(row, (v, j) => Math.abs(v - e[j]!)));
      assert.ok(worst <= 1e-6, `request ${i}: largest difference from embedToFile is ${worst}`);
    });
  } finally {
    await encoder.close();
  }
});

test('mainThreadPixels 0 sends every busy-time image to the decoding thread, with the same features; bad values are refused', async () => {
  const { bodies, expected } = await imageFolder('no-main-decode', 8, 60, 8);
  await assert.rejects(Encoder.open({ checkpoint: tiny, mainThreadPixels: -1 }), (e) => e instanceof RangeError && /"mainThreadPixels"/.test(e.message));
  await assert.rejects(Encoder.open({ checkpoint: tiny, mainThreadPixels: 1.5 }), (e) => e instanceof RangeError && /"mainThreadPixels"/.test(e.message));
  for (const mainThreadPixels of [0, 255]) {
    // 255: below the 16 x 16 PNGs; 0: never.
    const encoder = await Encoder.open({ checkpoint: tiny, mainThreadPixels });
    try {
      const rows = await Promise.all(Array.from({ length: 24 }, (_, i) => encoder.embed(bodies[i % 8]!)));
      const s = encoder.stats();
      assert.equal(s.direct, 1);
      assert.equal(s.mainThreadDecoded, 0, `mainThreadPixels ${mainThreadPixels}: no image decoded on the main thread`);
      const worst = Math.max(...rows.map((row, i) => Math.max(...Array.from(row, (v, j) => Math.abs(v - expected[(i % 8) * 16 + j]!)))));
      assert.ok(worst <= 1e-6, `largest difference from embedToFile is ${worst}`);
    } finally {
      await encoder.close();
    }
  }
});

test('the event loop stays responsive while the worker computes a burst', async (t) => {
  // Big enough that one batch takes tens to hundreds of ms on a small CPU, so
  // running the model on the main thread would stall the timer by that much.
  const heavy = checkpoint('heavy', {
    encoder: { imgSize: 48, patchSize: 4, inChans: 3, embedDim: 96, depth: 5, numHeads: 3, classAttentionLayers: 1 },
    projectorHiddenDim: 16, projectorDim: 16, predictorHiddenDim: 16, maskRatio: 0.5,
  }, 5);
  const encoder = await Encoder.open({ checkpoint: heavy, maxBatch: 32, maxWaitMs: 5 });
  try {
    const body = await encodeImage(64, 80, 9, 'png');
    let last = performance.now();
    let worst = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last - 5);
      last = now;
    }, 5);
    const started = performance.now();
    await Promise.all(Array.from({ length: 128 }, () => encoder.embed(body)));
    const wall = performance.now() - started;
    clearInterval(tick);
    const s = encoder.stats();
    t.diagnostic(`128 requests in ${wall.toFixed(0)} ms, ${s.batches} batches, forward passes ${s.computeMs.toFixed(0)} ms (longest ${s.maxComputeMs.toFixed(0)} ms), worst timer lateness ${worst.toFixed(1)} ms`);
    // The main thread only copies bytes and settles promises (well under 1 ms a
    // batch); on a 2-core machine shared with other work, scheduling and GC
    // still delay a timer by up to a few tens of ms, hence 100 ms, not 10.
    assert.ok(worst < 100, `a 5 ms timer was up to ${worst.toFixed(1)} ms late`);
  } finally {
    await encoder.close();
  }
});

test('a full queue refuses at once with a retry hint; an abort before dispatch drops only that request', async () => {
  const body = await encodeImage(20, 20, 1, 'png');
  const encoder = await Encoder.open({ checkpoint: tiny, maxBatch: 2, maxWaitMs: 5, queueLimit: 3 });
  try {
    // Every request waits (first in the decoding thread) until the model takes it: 3 fit.
    const accepted = Array.from({ length: 3 }, () => encoder.embed(body));
    assert.equal(encoder.stats().queued, 3);
    let refused: unknown;
    await encoder.embed(body).catch((e: unknown) => { refused = e; });
    assert.ok(refused instanceof QueueFullError, String(refused));
    assert.ok(refused.retryAfterMs > 0);
    assert.equal(encoder.stats().queued, 3, 'the refusal came before any queued request was served');
    assert.equal((await Promise.all(accepted)).length, 3);
  } finally {
    await encoder.close();
  }

  const slow = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 100 });
  try {
    const ac = new AbortController();
    const cancelled = slow.embed(body, { signal: ac.signal });
    const kept = [slow.embed(body), slow.embed(body)];
    ac.abort();
    await assert.rejects(cancelled, { name: 'AbortError' });
    const reason = new Error('client went away');
    const ac2 = new AbortController();
    const custom = slow.embed(body, { signal: ac2.signal });
    ac2.abort(reason);
    await assert.rejects(custom, (e) => e === reason);
    await assert.rejects(slow.embed(body, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal((await Promise.all(kept)).length, 2);
    assert.deepEqual(slow.stats().batchSizes, [0, 0, 1], 'one batch, of the two requests left');
  } finally {
    await slow.close();
  }
});

test('timeouts, bad bodies and decompression bombs reject only their own request', async () => {
  const good = await encodeImage(24, 20, 2, 'jpeg');
  const encoder = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 50 });
  try {
    await assert.rejects(encoder.embed(good, { timeoutMs: 1 }), (e) => e instanceof TimeoutError && /within 1 ms/.test(e.message));
    const alone = await encoder.embed(good);
    const truncated = good.subarray(0, Math.floor(good.length / 2));
    const [bad, empty, ok] = await Promise.allSettled([encoder.embed(truncated), encoder.embed(Buffer.alloc(0)), encoder.embed(good)]);
    assert.ok(bad.status === 'rejected' && bad.reason instanceof InputError && /Cannot decode image \(\d+ bytes\)/.test(bad.reason.message), String((bad as PromiseRejectedResult).reason));
    assert.ok(empty.status === 'rejected' && empty.reason instanceof InputError && /empty \(0 bytes\)/.test(empty.reason.message));
    assert.ok(ok.status === 'fulfilled');
    assert.deepEqual(ok.value, alone, 'the good image of the batch is unaffected');
    await assert.rejects(encoder.embed(Buffer.from('not an image at all')), InputError);

    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const [bomb, fine] = await Promise.allSettled([encoder.embed(pngHeader(100_000, 100_000)), encoder.embed(good)]);
    const ms = performance.now() - started;
    assert.ok(bomb.status === 'rejected' && bomb.reason instanceof InputError && /pixel limit/.test(bomb.reason.message), String((bomb as PromiseRejectedResult).reason));
    assert.ok(fine.status === 'fulfilled');
    assert.ok(ms < 2000, `refused in ${ms.toFixed(0)} ms`);
    assert.ok(process.memoryUsage().rss - rss < 200e6, 'the 30 GB image was never allocated');

    await assert.rejects(encoder.embedPixels(new Uint8Array(10), 2, 2, 3), /Expected 12 bytes/);
    const px = noise(20, 24, 4);
    const raw = await encoder.embedPixels(px, 20, 24, 3);
    const png = await encoder.embed(await sharp(px, { raw: { width: 24, height: 20, channels: 3 } }).png().toBuffer());
    assert.deepEqual(raw, png, 'raw pixels give the features of the same pixels as a PNG');

    // The same pixels as a uint8 Tensor [C, H, W] (the DataLoader's layout), and gray [H, W] / [1, H, W].
    const chw = et.fromTypedArray(new Uint8Array(px), [20, 24, 3]).permute(2, 0, 1);
    assert.deepEqual(await encoder.embedTensor(chw), raw, 'a [3, H, W] tensor gives the features of its pixels');
    assert.equal(chw.isDisposed, false, 'the caller keeps its tensor');
    const gray = new Uint8Array(noise(20, 24, 5).subarray(0, 20 * 24));
    const fromGray = await encoder.embedPixels(gray, 20, 24, 1);
    assert.deepEqual(await encoder.embedTensor(et.fromTypedArray(gray, [20, 24])), fromGray);
    assert.deepEqual(await encoder.embedTensor(et.fromTypedArray(gray, [1, 20, 24])), fromGray);
    await assert.rejects(encoder.embedTensor(chw.float()), (e) => e instanceof InputError && /Expected a uint8 image tensor \(pixels 0-255\) but received float32/.test(e.message));
    await assert.rejects(encoder.embedTensor(et.zeros([2, 4, 4], { dtype: 'uint8' })), /Expected an image tensor \[C, H, W\] with C = 1 or 3, or \[H, W\], but received shape \[2, 4, 4\]/);
    await assert.rejects(encoder.embedTensor(et.zeros([1, 0, 4], { dtype: 'uint8' })), /empty/);
    await assert.rejects(encoder.embedTensor(px as unknown as et.Tensor), /Expected a Tensor for "image" of embedTensor but received/);
    const gone = et.zeros([1, 4, 4], { dtype: 'uint8' });
    gone.dispose();
    await assert.rejects(encoder.embedTensor(gone), /has been disposed/);
  } finally {
    await encoder.close();
  }
});

test('close drains queued requests, or rejects them with ClosedError; later calls reject', async () => {
  const body = await encodeImage(16, 16, 3, 'png');
  const drained = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 10_000 });
  const queued = [drained.embed(body), drained.embed(body), drained.embed(body)];
  const started = performance.now();
  await drained.close();
  assert.ok(performance.now() - started < 5000, 'close sends the waiting batch at once, not after maxWaitMs');
  assert.equal((await Promise.all(queued)).length, 3);
  await assert.rejects(drained.embed(body), ClosedError);

  const dropped = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 10_000 });
  const lost = Promise.allSettled([dropped.embed(body), dropped.embed(body)]);
  await dropped.close({ drain: false });
  for (const r of await lost) assert.ok(r.status === 'rejected' && r.reason instanceof ClosedError, String((r as PromiseRejectedResult).reason));
  await assert.rejects(dropped.embed(body), ClosedError);
  await dropped.close(); // a second close is harmless
});

test('packWeights: false serves ATen\'s linear: no packed layers, the features of embedToFile with packWeights false', async () => {
  const body = await encodeImage(16, 16, 9, 'png');
  fs.mkdirSync(path.join(dir, 'plain'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'plain', 'a.png'), body);
  const out = path.join(dir, 'plain.safetensors');
  await embedToFile({ checkpoint: tiny, images: path.join(dir, 'plain'), out, packWeights: false });
  const { tensors } = loadSafetensors(out);
  const expected = tensors.get('features')!.toTypedArray<'float32'>();
  for (const t of tensors.values()) t.dispose();
  const plain = await Encoder.open({ checkpoint: tiny, packWeights: false });
  try {
    assert.equal(plain.packedLinears, 0);
    assert.deepEqual(await plain.embed(body), expected, 'one image, one batch: the same numbers bit for bit');
  } finally {
    await plain.close();
  }
});

test('replayed operator traces give the numbers of the model\'s own forward pass, bit for bit', async () => {
  const bodies = await Promise.all([16, 20, 37, 16, 24].map((h, i) => encodeImage(h, 18 + i, 60 + i, 'png')));
  const eager = await Encoder.open({ checkpoint: tiny, trace: false });
  const traced = await Encoder.open({ checkpoint: tiny }); // on by default on the CPU
  try {
    assert.deepEqual([eager.traced, traced.traced], [false, true]);
    // One at a time: batches of one, which replay the trace the warm-up pass recorded.
    for (const [i, body] of bodies.entries()) assert.deepEqual(await traced.embed(body), await eager.embed(body), `image ${i}`);
  } finally {
    await Promise.all([eager.close(), traced.close()]);
  }
  await assert.rejects(Encoder.open({ checkpoint: tiny, trace: 'yes' as unknown as boolean }), /Expected true or false for "trace" but received/);
});

test('a thread that dies rejects what is pending with ClosedError, and the encoder refuses new work', async () => {
  const body = await encodeImage(16, 16, 3, 'png');
  for (const thread of ['decoder', 'worker'] as const) {
    const encoder = await Encoder.open({ checkpoint: tiny, maxBatch: 8, maxWaitMs: 10_000 });
    const pending = Promise.allSettled([encoder.embed(body), encoder.embed(body)]);
    // Reaching into the private thread handle stands in for a crash (an OOM kill, a native fault).
    await (encoder as unknown as Record<typeof thread, { terminate(): Promise<number> }>)[thread].terminate();
    for (const r of await pending) {
      assert.ok(r.status === 'rejected' && r.reason instanceof ClosedError, `${thread}: ${String((r as PromiseRejectedResult).reason)}`);
      assert.match((r.reason as Error).message, thread === 'decoder' ? /decoding thread stopped/ : /worker stopped/);
    }
    assert.equal(encoder.closed, true);
    await assert.rejects(encoder.embed(body), ClosedError);
    await encoder.close();
  }
});

test('a process that opens, uses and closes an encoder exits on its own (no worker left running)', () => {
  const lib = path.resolve(__dirname, '..', '..', 'lib', 'serve');
  const program = `
    const { Encoder } = require(${JSON.stringify(lib)});
    (async () => {
      const e = await Encoder.open({ checkpoint: ${JSON.stringify(tiny)} });
      const px = new Uint8Array(16 * 16 * 3).fill(7);
      const f = await e.embedPixels(px, 16, 16, 3);
      await e.close();
      console.log('features ' + f.length);
    })().catch((err) => { console.error(err); process.exit(2); });`;
  const r = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `still running after 60 s (killed by ${r.signal}): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^features 16$/m);
});
