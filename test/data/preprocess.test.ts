// The evaluation transform: pass-through at the input size, shorter-side
// resize + centre crop geometry, and normalisation into NCHW float32.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';

const { resizeShorterAndCenterCrop, resizedSize, centerCropOffset } = et.data;

function randomBytes(n: number, seed = 3): Uint8Array {
  const b = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

test('an image already at the input size passes through bit-exact; shorter side at size is only cropped', async () => {
  for (const c of [1, 3]) {
    const img = randomBytes(28 * 28 * c, c);
    const out = await resizeShorterAndCenterCrop(img, 28, 28, c, 28);
    assert.deepEqual(Array.from(out), Array.from(img));
    // 28 high, 40 wide: no resampling, columns 6..33 kept.
    const wide = randomBytes(28 * 40 * c, 9);
    const cropped = await resizeShorterAndCenterCrop(wide, 28, 40, c, 28);
    assert.equal(cropped.length, 28 * 28 * c);
    for (let y = 0; y < 28; y++) {
      assert.deepEqual(Array.from(cropped.subarray(y * 28 * c, (y + 1) * 28 * c)), Array.from(wide.subarray((y * 40 + 6) * c, (y * 40 + 34) * c)), `row ${y}`);
    }
  }
});

test('torchvision geometry: shorter side to size (longer truncated), crop offset rounded half to even', () => {
  assert.deepEqual(resizedSize(30, 40, 28), { height: 28, width: 37 });
  assert.deepEqual(resizedSize(40, 30, 28), { height: 37, width: 28 });
  assert.deepEqual(resizedSize(500, 375, 224), { height: 298, width: 224 });
  assert.deepEqual(centerCropOffset(28, 37, 28), { top: 0, left: 4 }); // round(4.5) = 4
  assert.deepEqual(centerCropOffset(31, 28, 28), { top: 2, left: 0 }); // round(1.5) = 2
  assert.deepEqual(centerCropOffset(298, 224, 224), { top: 37, left: 0 });
});

/** Intensity-weighted centre of the dark pixels, in pixel-index coordinates. */
function darkCentroid(img: Uint8Array, h: number, w: number, c: number): [number, number] {
  let sy = 0;
  let sx = 0;
  let total = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const d = 255 - img[(y * w + x) * c]!;
      sy += d * y;
      sx += d * x;
      total += d;
    }
  }
  return [sy / total, sx / total];
}

test('a 40x30 image becomes a 28x28 centre crop with the pattern centre in the centre', async () => {
  for (const c of [1, 3]) {
    for (const [h, w] of [[30, 40], [40, 30]] as const) {
      // White with a dark 4x4 square centred in the image.
      const img = new Uint8Array(h * w * c).fill(255);
      for (let y = h / 2 - 2; y < h / 2 + 2; y++) for (let x = w / 2 - 2; x < w / 2 + 2; x++) img.fill(0, (y * w + x) * c, (y * w + x + 1) * c);
      const out = await resizeShorterAndCenterCrop(img, h, w, c, 28);
      assert.equal(out.length, 28 * 28 * c);
      const [cy, cx] = darkCentroid(out, 28, 28, c);
      // The centre is 13.5; the odd crop (37 - 28 = 9) leaves it half a pixel off.
      assert.ok(Math.abs(cy - 13.5) <= 0.6 && Math.abs(cx - 13.5) <= 0.6, `${h}x${w}x${c}: centroid (${cy}, ${cx})`);
      // Resampled, but still roughly the same square (about 28/30 of 4 pixels wide).
      const dark = Array.from({ length: 28 * 28 }, (_, i) => out[i * c]!).filter((v) => v < 128).length;
      assert.ok(dark >= 9 && dark <= 20, `${dark} dark pixels`);
    }
  }
  // One channel and three equal channels resample identically.
  const gray = randomBytes(30 * 40, 5);
  const one = await resizeShorterAndCenterCrop(gray, 30, 40, 1, 28);
  const three = await resizeShorterAndCenterCrop(et.data.grayToRgb(gray), 30, 40, 3, 28);
  assert.deepEqual(Array.from(one), Array.from({ length: 28 * 28 }, (_, i) => three[3 * i]!));
  // Upsampling works too.
  assert.equal((await resizeShorterAndCenterCrop(gray, 30, 40, 1, 64)).length, 64 * 64);
  await assert.rejects(resizeShorterAndCenterCrop(gray, 30, 40, 2, 28), /Expected 1 or 3 channels but received 2/);
  await assert.rejects(resizeShorterAndCenterCrop(gray, 30, 41, 1, 28), /Expected 1230 bytes for a 30 x 41 x 1 image but received 1200/);
});

test('toNormalizedTensor: float32 NCHW, (x / 255 - mean) / std per channel', () => {
  const before = et.memory().liveTensors;
  const [n, h, w, c] = [2, 3, 4, 3];
  const px = randomBytes(n * h * w * c, 11);
  px[0] = 0;
  px[1] = 255;
  const mean = [...et.IMAGENET_MEAN];
  const std = [...et.IMAGENET_STD];
  const t = et.toNormalizedTensor(px, n, h, w, c, mean, std);
  assert.deepEqual(t.shape, [n, c, h, w]);
  assert.equal(t.dtype, 'float32');
  assert.ok(t.isContiguous);
  const out = t.toTypedArray() as Float32Array;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = px[((b * h + y) * w + x) * c + ch]!;
          const expected = (v / 255 - mean[ch]!) / std[ch]!;
          const got = out[((b * c + ch) * h + y) * w + x]!;
          assert.ok(Math.abs(got - expected) <= 1e-6, `[${b},${ch},${y},${x}] ${got} vs ${expected}`);
        }
      }
    }
  }
  assert.ok(Math.abs(out[0]! - -0.485 / 0.229) <= 1e-6);
  assert.ok(Math.abs(out[h * w]! - (1 - 0.456) / 0.224) <= 1e-6);
  t.dispose();
  // One channel with the default 0.5 / 0.5: [-1, 1].
  const g = et.toNormalizedTensor(new Uint8Array([0, 51, 255, 128]), 1, 2, 2, 1, [0.5], [0.5]);
  assert.deepEqual(g.shape, [1, 1, 2, 2]);
  const gv = Array.from(g.toTypedArray() as Float32Array);
  [-1, 51 / 127.5 - 1, 1, 128 / 127.5 - 1].forEach((v, i) => assert.ok(Math.abs(gv[i]! - v) <= 1e-6, `${gv[i]} vs ${v}`));
  g.dispose();
  assert.equal(et.memory().liveTensors, before, 'intermediates are freed');
});

test('toNormalizedTensor validates its arguments; default normalisation', () => {
  const px = new Uint8Array(12);
  assert.throws(() => et.toNormalizedTensor(px, 1, 2, 2, 3, [0.5, 0.5], [1, 1, 1]), /Expected 3 mean value\(s\), one per channel, but received \[0.5,0.5\]/);
  assert.throws(() => et.toNormalizedTensor(px, 1, 2, 2, 3, [0, 0, 0], [1, 0, 1]), /Expected finite std values > 0 but received \[1,0,1\]/);
  assert.throws(() => et.toNormalizedTensor(px, 1, 2, 2, 3, [0, NaN, 0], [1, 1, 1]), /Expected finite mean values/);
  assert.throws(() => et.toNormalizedTensor(px, 1, 2, 3, 2, [0, 0], [1, 1]), /Expected 1 or 3 channels but received 2/);
  assert.throws(() => et.toNormalizedTensor(px, 2, 2, 2, 3, [0, 0, 0], [1, 1, 1]), /Expected 24 bytes for a 2 x 2 x 2 x 3 batch but received 12/);
  assert.throws(() => et.toNormalizedTensor(px, 0, 2, 2, 3, [0, 0, 0], [1, 1, 1]), /Expected a positive integer for the batch size but received number 0/);
  assert.deepEqual(et.defaultNormalization(3), { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  assert.deepEqual(et.defaultNormalization(1), { mean: [0.5], std: [0.5] });
  assert.throws(() => et.defaultNormalization(4), /Expected 1 or 3 channels but received 4/);
});
