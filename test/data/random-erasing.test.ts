// Random erasing (timm's RandomErasing(p, mode='pixel', max_count=1)):
// statistics over a large batch (erased fraction, one rectangle per erased
// image with area and aspect in timm's ranges, N(0, 1) fill), untouched
// images bit-equal, seeding and errors. An exact match with timm's Python
// RNG is not expected, so the test checks the distribution instead.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { erasingBoxesFromUniforms, randomErasing } from '../../lib/data/random-erasing';

test('randomErasing: erased fraction, one box of timm-range area and aspect, N(0, 1) noise, others bit-equal', () => {
  const [b, c, h, w] = [2000, 3, 32, 32];
  const x = et.randn([b, c, h, w], { generator: et.Generator.create(1) });
  const before = x.toTypedArray() as Float32Array;
  const y = randomErasing(x, 0.25, et.Generator.create(2));
  assert.deepEqual(Array.from(x.toTypedArray() as Float32Array).slice(0, 1000), Array.from(before).slice(0, 1000), 'input untouched');
  const out = y.toTypedArray() as Float32Array;
  const plane = h * w;
  let erased = 0;
  let areaSum = 0;
  let logAspectSum = 0;
  let noiseSum = 0;
  let noiseSq = 0;
  let noiseN = 0;
  for (let i = 0; i < b; i++) {
    // Changed pixels of channel 0; the other channels must change at exactly the same places.
    let [top, left, bottom, right, count] = [h, w, -1, -1, 0];
    for (let p = 0; p < plane; p++) {
      const changed = out[i * c * plane + p] !== before[i * c * plane + p];
      for (let k = 1; k < c; k++) {
        const o = (i * c + k) * plane + p;
        if ((out[o] !== before[o]) !== changed) assert.fail(`image ${i}: channel ${k} erased elsewhere than channel 0 at pixel ${p}`);
      }
      if (!changed) continue;
      const r = Math.floor(p / w);
      const q = p % w;
      [top, left, bottom, right] = [Math.min(top, r), Math.min(left, q), Math.max(bottom, r), Math.max(right, q)];
      count++;
      for (let k = 0; k < c; k++) {
        const v = out[(i * c + k) * plane + p]!;
        noiseSum += v;
        noiseSq += v * v;
        noiseN++;
      }
    }
    if (count === 0) continue;
    erased++;
    const bh = bottom - top + 1;
    const bw = right - left + 1;
    assert.equal(count, bh * bw, `image ${i}: the erased pixels form one rectangle`);
    assert.ok(bh < h && bw < w, `image ${i}: box ${bh} x ${bw} strictly inside`);
    const area = (bh * bw) / plane;
    assert.ok(area >= 0.015 && area <= 0.36, `image ${i}: area fraction ${area} outside [0.02, 1/3] (+ rounding)`);
    const logAspect = Math.log(bh / bw);
    assert.ok(Math.abs(logAspect) <= Math.log(1 / 0.3) + 0.2, `image ${i}: aspect ${bh}/${bw}`);
    areaSum += area;
    logAspectSum += logAspect;
  }
  const se = Math.sqrt((0.25 * 0.75) / b);
  assert.ok(Math.abs(erased / b - 0.25) < 4 * se, `erased fraction ${erased / b}`);
  const meanArea = areaSum / erased;
  assert.ok(meanArea > 0.15 && meanArea < 0.2, `mean area fraction ${meanArea} (U(0.02, 1/3) has mean 0.177)`);
  assert.ok(Math.abs(logAspectSum / erased) < 0.1, `mean log aspect ${logAspectSum / erased} (symmetric around 0)`);
  const mean = noiseSum / noiseN;
  const std = Math.sqrt(noiseSq / noiseN - mean * mean);
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(std - 1) < 0.01, `noise mean ${mean}, std ${std}`);
  x.dispose();
  y.dispose();
});

test('erasingBoxesFromUniforms follows timm rule: round(sqrt(area r)), strict fit, uniform placement', () => {
  // apply u = 0.1 < p; first attempt: area 0.02 + (1/3 - 0.02) * 0.5, log-aspect midpoint (r = 1); top/left at the ends.
  const u = new Array(23).fill(0.5);
  u[0] = 0.1;
  u[21] = 0;
  u[22] = 0.999999;
  const [top, left, bh, bw] = erasingBoxesFromUniforms(u, 1, 40, 50, 0.25);
  const side = Math.round(Math.sqrt((0.02 + (1 / 3 - 0.02) * 0.5) * 2000));
  assert.deepEqual([top, left, bh, bw], [0, 50 - side, side, side]);
  u[0] = 0.3; // > p: kept
  assert.deepEqual(Array.from(erasingBoxesFromUniforms(u, 1, 40, 50, 0.25)), [0, 0, 0, 0]);
});

test('randomErasing: seeded; p = 0 keeps everything; errors name the problem', () => {
  const x = et.randn([8, 1, 12, 12], { generator: et.Generator.create(3) });
  const live = et.memory().liveTensors;
  const a = randomErasing(x, 0.5, et.Generator.create(4));
  assert.equal(et.memory().liveTensors, live + 1, 'randomErasing leaves only its result behind');
  const b = randomErasing(x, 0.5, et.Generator.create(4));
  assert.deepEqual(Array.from(a.toTypedArray() as Float32Array), Array.from(b.toTypedArray() as Float32Array));
  const none = randomErasing(x, 0, et.Generator.create(4));
  assert.deepEqual(Array.from(none.toTypedArray() as Float32Array), Array.from(x.toTypedArray() as Float32Array));
  assert.throws(() => randomErasing(x, 1.5), /Expected a probability in \[0, 1\] for the random erasing probability but received number 1.5/);
  const u8 = et.zeros([2, 3, 4, 4], { dtype: 'uint8' });
  assert.throws(() => randomErasing(u8, 0.25), /Expected floating-point normalised images for randomErasing but received/);
  for (const t of [x, a, b, none, u8]) t.dispose();
});

test('randomErasing: a host generator takes the box uniforms (read back to JS), the device generator the noise', () => {
  et.scope(() => {
    const x = et.randn([6, 3, 12, 10], { generator: et.Generator.create(3) });
    const same = (a: et.Tensor, b: et.Tensor) => Boolean(a.eq(b).all().item());
    const g = et.Generator.create(1);
    assert.ok(same(randomErasing(x, 1, g, g), randomErasing(x, 1, et.Generator.create(1))), 'the generator itself as host: the one-generator draws');
    const split = randomErasing(x, 1, et.Generator.create(1), et.Generator.create(2));
    assert.ok(same(split, randomErasing(x, 1, et.Generator.create(1), et.Generator.create(2))), 'seeded');
    // boxes from the host generator: the erased pixels are where the host's uniforms put them
    const u = et.rand([6, 23], { dtype: 'float64', generator: et.Generator.create(2) }).toTypedArray() as Float64Array;
    const boxes = erasingBoxesFromUniforms(u, 6, 12, 10, 1);
    const erased = split.ne(x).any(1).toTypedArray() as Uint8Array;
    for (let i = 0; i < 6; i++) {
      const [top, left, h, w] = [boxes[4 * i]!, boxes[4 * i + 1]!, boxes[4 * i + 2]!, boxes[4 * i + 3]!];
      let count = 0;
      for (let r = 0; r < 12; r++) for (let c = 0; c < 10; c++) count += erased[i * 120 + r * 10 + c]!;
      assert.equal(count, h * w, `image ${i}: the box drawn from the host generator`);
      if (h > 0) assert.equal(erased[i * 120 + top * 10 + left], 1, `image ${i}: erased at the box corner`);
    }
  });
});
