// Batched augmentation: crop geometry (statistics, fallback, torchvision's
// rule against a Python re-statement), the crop + resize against
// F.interpolate, colour ops against PyTorch formulas and colorsys, the
// schemes of paper Table 4, seeding, and argument errors.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import {
  augmentConfig, augmentPair, centerSquareBoxes, cropBoxesFromUniforms, randomResizedCropBoxes, resizedCrop, AUGMENT_SCHEMES,
  CROP_UNIFORMS_PER_IMAGE, type AugmentConfig,
} from '../../lib/data/augment';
import {
  adjustBrightness, adjustContrast, adjustHue, adjustSaturation, applyColorJitter, colorJitter, grayscale, normalize, randomGrayscale,
  rgbToGrayscale, rgbToHsv, hsvToRgb, sampleJitter,
} from '../../lib/data/color';
import { toNormalizedTensor } from '../../lib/data/preprocess';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

const floats = (t: et.Tensor): number[] => Array.from(t.toTypedArray() as Float32Array);

function sameBits(a: et.Tensor, b: et.Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  assert.equal(a.dtype, b.dtype, `${what}: dtype`);
  const x = a.toTypedArray() as Float32Array;
  const y = b.toTypedArray() as Float32Array;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) assert.fail(`${what}: element ${i} is ${x[i]} but expected ${y[i]}`);
}

function differs(a: et.Tensor, b: et.Tensor): boolean {
  const x = a.toTypedArray() as Float32Array;
  const y = b.toTypedArray() as Float32Array;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return true;
  return false;
}

function uint8Images(b: number, c: number, h: number, w: number, seed: number): et.Tensor {
  return et.randint(0, 256, [b, c, h, w], { dtype: 'uint8', generator: et.Generator.create(seed) });
}

// One Python run serves every oracle comparison of this file (PyTorch's
// start-up dominates): each test registers its inputs and code at load time
// and reads its outputs from the shared result.
const oracleCode: string[] = [];
const oracleInputs: Record<string, et.Tensor> = {};
let oracleOut: Map<string, et.Tensor> | undefined;
function registerOracle(code: string, inputs: Record<string, et.Tensor>): void {
  oracleCode.push(code);
  Object.assign(oracleInputs, inputs);
}
function oracle(name: string): et.Tensor {
  oracleOut ??= runOracle('eval_oracle.py', { code: oracleCode.join('\n') }, oracleInputs);
  const t = oracleOut.get(name);
  if (t === undefined) throw new Error(`oracle output ${name} missing`);
  return t;
}
const py = (v: unknown): string => JSON.stringify(v).replace(/true/g, 'True').replace(/false/g, 'False');

// ---- crop geometry ---------------------------------------------------------------

test('randomResizedCropBoxes: boxes inside the image, area and aspect ratio in range, placement spread', () => {
  const H = 60;
  const W = 80;
  const n = 4000;
  const boxes = randomResizedCropBoxes(n, H, W, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(7));
  assert.equal(boxes.length, 4 * n);
  const areas: number[] = [];
  const logRatios: number[] = [];
  let rowPos = 0;
  for (let i = 0; i < n; i++) {
    const [top, left, h, w] = boxes.subarray(4 * i, 4 * i + 4) as unknown as [number, number, number, number];
    for (const v of [top, left, h, w]) assert.ok(Number.isInteger(v), `box ${i} integral`);
    assert.ok(top >= 0 && left >= 0 && h >= 1 && w >= 1 && top + h <= H && left + w <= W, `box ${i} inside: ${[top, left, h, w]}`);
    // Rounding w and h moves the area and the ratio a little past the drawn ones.
    const area = (h * w) / (H * W);
    assert.ok(area >= 0.2 - 0.03 && area <= 1, `box ${i} area ${area}`);
    const r = w / h;
    assert.ok(r >= (3 / 4) * (1 - 0.1) && r <= (4 / 3) * (1 + 0.1), `box ${i} ratio ${r}`);
    areas.push(area);
    logRatios.push(Math.log(r));
    if (h < H) rowPos += top / (H - h);
    else rowPos += 0.5;
  }
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.min(...areas) < 0.22 && Math.max(...areas) > 0.95, 'areas span the scale range');
  // On a square image, rejection treats r and 1/r alike: log r is centred.
  const sq = randomResizedCropBoxes(n, 64, 64, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(8));
  const sqLog = Array.from({ length: n }, (_, i) => Math.log(sq[4 * i + 3]! / sq[4 * i + 2]!));
  assert.ok(Math.abs(mean(sqLog)) < 0.01, `log-ratio centred (${mean(sqLog)})`);
  assert.ok(Math.min(...logRatios) < Math.log(0.78) && Math.max(...logRatios) > Math.log(1.28), 'ratios span the range');
  assert.ok(Math.abs(rowPos / n - 0.5) < 0.03, `uniform placement (${rowPos / n})`);
  // Seeded.
  assert.deepEqual(randomResizedCropBoxes(50, H, W, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(3)), randomResizedCropBoxes(50, H, W, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(3)));
  assert.notDeepEqual(randomResizedCropBoxes(50, H, W, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(3)), randomResizedCropBoxes(50, H, W, [0.2, 1], [3 / 4, 4 / 3], et.Generator.create(4)));
});

test('randomResizedCropBoxes: impossible ratios fall back to the centre crop clipped to the ratio range', () => {
  // Square image, ratio >= 5 and area >= half: w = sqrt(A r) > W always.
  const tall = randomResizedCropBoxes(20, 40, 40, [0.5, 1], [5, 6], et.Generator.create(1));
  for (let i = 0; i < 20; i++) assert.deepEqual(Array.from(tall.subarray(4 * i, 4 * i + 4)), [16, 0, 8, 40]); // h = round(40 / 5)
  // Wide image (ratio 4) with ratios <= 1 and area >= 0.9: h = sqrt(A / r) > H always.
  const wide = randomResizedCropBoxes(20, 20, 80, [0.9, 1], [0.5, 1], et.Generator.create(2));
  for (let i = 0; i < 20; i++) assert.deepEqual(Array.from(wide.subarray(4 * i, 4 * i + 4)), [0, 30, 20, 20]); // w = round(20 * 1)
  // Image ratio inside the range: the whole image.
  // (area = the whole image at ratio ~2 never fits, so every attempt fails)
  const whole = cropBoxesFromUniforms(new Float64Array(CROP_UNIFORMS_PER_IMAGE).fill(0.999), 1, 30, 30, [1, 1], [0.5, 2]);
  assert.deepEqual(Array.from(whole), [0, 0, 30, 30]);
  // Python's round (half to even) on the fallback: 30 / 4 = 7.5 -> 8, 34 / 4 = 8.5 -> 8.
  assert.deepEqual(Array.from(cropBoxesFromUniforms(new Float64Array(CROP_UNIFORMS_PER_IMAGE), 1, 30, 30, [1, 1], [4, 5])), [11, 0, 8, 30]);
  assert.deepEqual(Array.from(cropBoxesFromUniforms(new Float64Array(CROP_UNIFORMS_PER_IMAGE), 1, 34, 34, [1, 1], [4, 5])), [13, 0, 8, 34]);
});

const ruleCases: [number, number, [number, number], [number, number]][] = [
  [60, 80, [0.2, 1], [3 / 4, 4 / 3]],
  [28, 28, [0.08, 1], [3 / 4, 4 / 3]],
  [17, 50, [0.5, 1], [0.2, 0.9]],
];
const ruleUniforms = ruleCases.map((_, k) => et.rand([300, CROP_UNIFORMS_PER_IMAGE], { dtype: 'float64', generator: et.Generator.create(10 + k) }).keep());
registerOracle(`
import math
for k, (H, W, s, r) in enumerate(${JSON.stringify(ruleCases)}):
    rows = []
    for v in x[f"rule_u{k}"].tolist():
        lr = (math.log(r[0]), math.log(r[1]))
        box = None
        for a in range(10):
            target = H * W * (s[0] + (s[1] - s[0]) * v[2 * a])
            ar = math.exp(lr[0] + (lr[1] - lr[0]) * v[2 * a + 1])
            w = int(round(math.sqrt(target * ar)))
            h = int(round(math.sqrt(target / ar)))
            if 0 < w <= W and 0 < h <= H:
                box = (int(v[20] * (H - h + 1)), int(v[21] * (W - w + 1)), h, w)
                break
        if box is None:
            ir = W / H
            if ir < min(r): w = W; h = int(round(w / min(r)))
            elif ir > max(r): h = H; w = int(round(h * max(r)))
            else: w = W; h = H
            box = ((H - h) // 2, (W - w) // 2, h, w)
        rows.append(box)
    out[f"rule_b{k}"] = torch.tensor(rows, dtype=torch.float64)
`, Object.fromEntries(ruleUniforms.map((u, k) => [`rule_u${k}`, u])));

test('cropBoxesFromUniforms matches the rule re-stated in Python (attempts, rounding, placement, fallback)', () => {
  ruleCases.forEach(([h, w, s, r], k) => {
    const mine = cropBoxesFromUniforms(ruleUniforms[k]!.toTypedArray() as Float64Array, 300, h, w, s, r);
    assert.deepEqual(Array.from(mine), Array.from(oracle(`rule_b${k}`).toTypedArray() as Float64Array), `case ${k}`);
  });
});

// ---- crop + resize ---------------------------------------------------------------------

const cropX = et.rand([6, 3, 30, 40], { generator: et.Generator.create(5) }).keep();
const cropG = et.rand([3, 1, 21, 19], { generator: et.Generator.create(6) }).keep();
// Downscaling, upscaling, anisotropic, edge-touching and whole-image boxes.
const cropBoxes = [2, 3, 25, 30, 5, 7, 8, 10, 0, 0, 30, 40, 10, 30, 20, 10, 0, 39, 30, 1, 29, 0, 1, 40];
const cropFlips = [false, true, false, true, true, false];
const cropGBoxes = [0, 0, 21, 19, 4, 2, 9, 13, 12, 1, 9, 18];
const cropGFlips = [true, false, true];
registerOracle(`
def crops_interp(img, boxes, flips, S):
    res = []
    for i in range(img.shape[0]):
        t, l, h, w = boxes[4 * i: 4 * i + 4]
        y = F.interpolate(img[i:i + 1, :, t:t + h, l:l + w], size=(S, S), mode='bilinear', align_corners=False, antialias=False)
        res.append(torch.flip(y, [-1]) if flips[i] else y)
    return torch.cat(res)
def crops_grid(img, boxes, flips, S):
    # Output pixel j samples x = l + (j + 0.5) w / S - 0.5, clamped to the
    # box's pixel centres, at grid_sample's normalised (2x + 1) / W - 1.
    B, C, H, W = img.shape
    def coords(start, n, size):
        return [(2 * min(max(start + (j + 0.5) * n / S - 0.5, start), start + n - 1) + 1) / size - 1 for j in range(S)]
    res = []
    for i in range(B):
        t, l, h, w = boxes[4 * i: 4 * i + 4]
        gx = torch.tensor(coords(l, w, W), dtype=torch.float64).float()
        gy = torch.tensor(coords(t, h, H), dtype=torch.float64).float()
        if flips[i]: gx = torch.flip(gx, [0])
        grid = torch.stack([gx.view(1, S).expand(S, S), gy.view(S, 1).expand(S, S)], -1)[None]
        res.append(F.grid_sample(img[i:i + 1], grid, mode='bilinear', padding_mode='border', align_corners=False))
    return torch.cat(res)
out['crop_interp'] = crops_interp(x['crop_x'], ${JSON.stringify(cropBoxes)}, ${py(cropFlips)}, 16)
out['crop_interp_g'] = crops_interp(x['crop_g'], ${JSON.stringify(cropGBoxes)}, ${py(cropGFlips)}, 11)
out['crop_grid'] = crops_grid(x['crop_x'], ${JSON.stringify(cropBoxes)}, ${py(cropFlips)}, 16)
out['crop_grid_g'] = crops_grid(x['crop_g'], ${JSON.stringify(cropGBoxes)}, ${py(cropGFlips)}, 11)
`, { crop_x: cropX, crop_g: cropG });

test('resizedCrop: bit-exact with a per-image Python grid_sample, and equal to crop + F.interpolate up to float32 rounding', () => {
  const out = resizedCrop(cropX, cropBoxes, 16, cropFlips);
  const outG = resizedCrop(cropG, cropGBoxes, 11, cropGFlips);
  assert.deepEqual(out.shape, [6, 3, 16, 16]);
  assert.deepEqual(outG.shape, [3, 1, 11, 11]);
  // The same sampling coordinates, computed image by image from the boxes in Python.
  sameBits(out, oracle('crop_grid'), 'rgb crops vs grid_sample');
  sameBits(outG, oracle('crop_grid_g'), 'gray crops vs grid_sample');
  // torchvision's crop-then-resize (antialias off): the same bilinear
  // weights, computed another way; they differ by the float32 rounding of
  // the normalised grid (measured ~1.6e-6 at most on values in [0, 1]).
  assertClose(out, oracle('crop_interp'), 'rgb crops vs interpolate', { atol: 5e-6, rtol: 0 });
  assertClose(outG, oracle('crop_interp_g'), 'gray crops vs interpolate', { atol: 5e-6, rtol: 0 });
  // A flip is exactly the mirror of the unflipped crop (the same grid, mirrored).
  sameBits(resizedCrop(cropX, cropBoxes, 16, cropFlips.map(() => true)), resizedCrop(cropX, cropBoxes, 16).flip(3), 'flip = torch.flip');
  sameBits(resizedCrop(cropX, cropBoxes, 16, et.tensor(cropFlips)), out, 'flip flags as a tensor');
  sameBits(resizedCrop(cropX, cropBoxes, 16, cropFlips.map(Number)), out, 'flip flags as numbers');
});

test('resizedCrop: the whole image at its own size comes back exactly (mirrored when flipped)', () => {
  for (const c of [1, 3]) {
    const x = et.rand([4, c, 28, 28], { generator: et.Generator.create(c) });
    const full = Array.from({ length: 4 }, () => [0, 0, 28, 28]).flat();
    sameBits(resizedCrop(x, full, 28), x, `identity ${c}`);
    const mixed = [0, 0, 28, 28, 3, 4, 20, 20, 0, 0, 28, 28, 0, 0, 27, 28];
    const out = resizedCrop(x, mixed, 28, [false, false, true, true]);
    sameBits(out.narrow(0, 0, 1), x.narrow(0, 0, 1), 'identity in a mixed batch');
    sameBits(out.narrow(0, 2, 1), x.narrow(0, 2, 1).flip(3), 'mirrored identity');
    // A 255-scaled uint8 image too (what augmentPair crops).
    const u = uint8Images(2, c, 28, 28, 9).float();
    sameBits(resizedCrop(u, full.slice(0, 8), 28), u, 'identity on 0..255 values');
  }
});

// ---- colour ops ---------------------------------------------------------------------

const colB = 5;
const colX = et.rand([colB, 3, 9, 7], { generator: et.Generator.create(11) });
// A few gray, black, white and saturated pixels.
const xs = et.scope(() => {
  const y = colX.clone();
  y.narrow(0, 0, 1).narrow(2, 0, 1).fill_(0.5);
  y.narrow(0, 1, 1).narrow(2, 0, 1).fill_(0);
  y.narrow(0, 2, 1).narrow(2, 0, 1).fill_(1);
  y.narrow(0, 3, 1).narrow(1, 0, 1).narrow(2, 0, 1).fill_(1);
  y.narrow(0, 3, 1).narrow(1, 1, 2).narrow(2, 0, 1).fill_(0);
  return y;
}).keep();
const g1 = et.rand([colB, 1, 6, 8], { generator: et.Generator.create(12) }).keep();
const xsCopy = xs.clone().keep();
const g1Copy = g1.clone().keep();
const fb = [0.6, 1.4, 1.0, 0.8, 1.2];
const fc = [0.6, 1.4, 0.0, 1.3, 0.9];
const fs = [0.8, 1.2, 0.0, 1.1, 1.0];
const fh = [-0.1, 0.1, 0.05, -0.5, 0.5];
const order = ['hue', 'saturation', 'brightness', 'contrast'] as const;
const apply = [true, false, true, true, true];
registerOracle(`
import colorsys
def col(v): return torch.tensor(v, dtype=torch.float32).view(-1, 1, 1, 1)
def gray(t): return 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3] if t.shape[1] == 3 else t
def blend(a, b, f): return (f * a + (1 - f) * b).clamp(0, 1)
def bright(t, f): return (col(f) * t).clamp(0, 1)
def contrast(t, f): return blend(t, gray(t).mean(dim=(1, 2, 3), keepdim=True), col(f))
def sat(t, f): return blend(t, gray(t), col(f))
def hue(t, f):
    d = t.double()
    res = torch.empty_like(d)
    for i in range(d.shape[0]):
        for a in range(d.shape[2]):
            for b in range(d.shape[3]):
                h, s, v = colorsys.rgb_to_hsv(*d[i, :, a, b].tolist())
                res[i, :, a, b] = torch.tensor(colorsys.hsv_to_rgb((h + f[i]) % 1.0, s, v), dtype=torch.float64)
    return res.float()
xs = x['col_xs']; g1 = x['col_g1']
fb, fc, fs, fh = ${JSON.stringify([fb, fc, fs, fh])}
out['col_bright'] = bright(xs, fb); out['col_contrast'] = contrast(xs, fc); out['col_sat'] = sat(xs, fs); out['col_hue'] = hue(xs, fh)
out['col_gray'] = gray(xs)
ops = {'brightness': lambda t: bright(t, fb), 'contrast': lambda t: contrast(t, fc), 'saturation': lambda t: sat(t, fs), 'hue': lambda t: hue(t, fh)}
y = xs
for name in ${JSON.stringify(order)}: y = ops[name](y)
out['col_jit'] = torch.where(torch.tensor(${py(apply)}).view(-1, 1, 1, 1), y, xs)
hsv = [[colorsys.rgb_to_hsv(*xs.double()[i, :, a, b].tolist()) for b in range(xs.shape[3])] for i in range(xs.shape[0]) for a in range(xs.shape[2])]
hsv = torch.tensor(hsv, dtype=torch.float64).view(xs.shape[0], xs.shape[2], xs.shape[3], 3).permute(0, 3, 1, 2).float()
out['col_h'] = hsv[:, 0:1].contiguous(); out['col_s'] = hsv[:, 1:2].contiguous(); out['col_v'] = hsv[:, 2:3].contiguous()
out['col_back'] = xs
out['col_norm'] = (xs - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
out['col_gbright'] = bright(g1, fb); out['col_gcontrast'] = contrast(g1, fc)
out['col_gnorm'] = (g1 - torch.tensor([0.5]).view(1, 1, 1, 1)) / torch.tensor([0.5]).view(1, 1, 1, 1)
`, { col_xs: xs, col_g1: g1 });

test('colour ops match PyTorch formulas and colorsys (per-image factors, 3 and 1 channels)', () => {
  const hsv = rgbToHsv(xs);
  const mine: Record<string, et.Tensor> = {
    bright: adjustBrightness(xs, fb),
    contrast: adjustContrast(xs, fc),
    sat: adjustSaturation(xs, fs),
    hue: adjustHue(xs, fh),
    gray: rgbToGrayscale(xs),
    jit: applyColorJitter(xs, { brightness: fb, contrast: fc, saturation: fs, hue: fh, order, apply }),
    h: hsv.h,
    s: hsv.s,
    v: hsv.v,
    back: hsvToRgb(hsv.h, hsv.s, hsv.v),
    norm: normalize(xs, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    gbright: adjustBrightness(g1, fb),
    gcontrast: adjustContrast(g1, et.tensor(fc)),
    gnorm: normalize(g1, [0.5], [0.5]),
  };
  const tol = { atol: 1e-5, rtol: 0 };
  for (const k of ['bright', 'contrast', 'sat', 'hue', 'jit', 's', 'v', 'back', 'gbright', 'gcontrast']) assertClose(mine[k]!, oracle(`col_${k}`), k, tol);
  // Hue is circular: compare the distance around the circle.
  const hm = floats(mine.h!);
  const ht = floats(oracle('col_h'));
  hm.forEach((v, i) => assert.ok(Math.min(Math.abs(v - ht[i]!), 1 - Math.abs(v - ht[i]!)) < 1e-5, `hue ${i}: ${v} vs ${ht[i]}`));
  // Grayscale and normalisation are bit-exact.
  sameBits(mine.gray!, oracle('col_gray'), 'grayscale');
  sameBits(mine.norm!, oracle('col_norm'), 'normalize');
  sameBits(mine.gnorm!, oracle('col_gnorm'), 'normalize 1 channel');
  // Images left out of the jitter are untouched, bit for bit.
  sameBits(mine.jit!.narrow(0, 1, 1), xs.narrow(0, 1, 1), 'apply = false');
  // No op wrote into its input.
  sameBits(xs, xsCopy, 'input unchanged');
  sameBits(g1, g1Copy, 'gray input unchanged');
});

test('one channel: saturation, hue and grayscale are identities; the replicated grayscale is exact', () => {
  const g1 = et.rand([3, 1, 5, 5], { generator: et.Generator.create(2) });
  sameBits(adjustSaturation(g1, [0, 2, 0.5]), g1, 'saturation');
  sameBits(adjustHue(g1, [0.1, -0.2, 0.5]), g1, 'hue');
  sameBits(grayscale(g1), g1, 'grayscale');
  sameBits(randomGrayscale(g1, 1, et.Generator.create(1)), g1, 'randomGrayscale');
  const x = et.rand([2, 3, 4, 4], { generator: et.Generator.create(3) });
  const gx = grayscale(x);
  const gr = rgbToGrayscale(x);
  for (let c = 0; c < 3; c++) sameBits(gx.narrow(1, c, 1), gr, `channel ${c}`);
  // randomGrayscale with p = 1 turns every image gray, p = 0 none.
  sameBits(randomGrayscale(x, 1, et.Generator.create(4)), gx, 'p = 1');
  sameBits(randomGrayscale(x, 0, et.Generator.create(4)), x, 'p = 0');
});

test('random colour draws: factors in range, jitter applied with p 0.8 and grayscale with p 0.2 per image', () => {
  const B = 2000;
  const j = sampleJitter(B, { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 }, 'cpu', et.Generator.create(8));
  const check = (f: et.Tensor | undefined, lo: number, hi: number, what: string) => {
    const v = floats(f as et.Tensor);
    assert.ok(Math.min(...v) >= lo && Math.max(...v) <= hi, what);
    assert.ok(Math.min(...v) < lo + 0.02 && Math.max(...v) > hi - 0.02, `${what} spans the range`);
  };
  check(j.brightness as et.Tensor, 0.6, 1.4, 'brightness');
  check(j.contrast as et.Tensor, 0.6, 1.4, 'contrast');
  check(j.saturation as et.Tensor, 0.8, 1.2, 'saturation');
  check(j.hue as et.Tensor, -0.1, 0.1, 'hue');
  const applied = (j.apply.toTypedArray() as Uint8Array).reduce((s, v) => s + v, 0) / B;
  assert.ok(Math.abs(applied - 0.8) < 0.03, `applied ${applied}`);
  assert.deepEqual([...j.order].sort(), ['brightness', 'contrast', 'hue', 'saturation']);
  // Strength 0 leaves the op out.
  const none = sampleJitter(4, { brightness: 0, hue: 0 }, 'cpu', et.Generator.create(8));
  assert.equal(none.brightness, undefined);
  assert.equal(none.hue, undefined);
  assert.deepEqual([...none.order].sort(), ['contrast', 'saturation']);
  // Grayscale per image: count the images whose three channels agree.
  const x = et.rand([400, 3, 2, 2], { generator: et.Generator.create(9) });
  const y = randomGrayscale(x, 0.2, et.Generator.create(10));
  const spread = floats(y.amax(1).sub(y.amin(1)).amax([1, 2]));
  const gray = spread.filter((v) => v === 0).length / 400;
  assert.ok(Math.abs(gray - 0.2) < 0.06, `gray fraction ${gray}`);
  // colorJitter: unchanged images come back exact, the others changed.
  const cj = colorJitter(x, { p: 0.8 }, et.Generator.create(11));
  let same = 0;
  for (let i = 0; i < 400; i++) if (!differs(cj.narrow(0, i, 1), x.narrow(0, i, 1))) same++;
  assert.ok(Math.abs(same / 400 - 0.2) < 0.06, `unjittered fraction ${same / 400}`);
  // Seeded.
  sameBits(colorJitter(x, {}, et.Generator.create(3)), colorJitter(x, {}, et.Generator.create(3)), 'same seed');
  assert.ok(differs(colorJitter(x, {}, et.Generator.create(3)), colorJitter(x, {}, et.Generator.create(4))), 'other seed');
});

// ---- schemes ---------------------------------------------------------------------------

function pair(images: et.Tensor, cfg: AugmentConfig, seed: number) {
  return augmentPair(images, cfg, et.Generator.create(seed));
}

test("'none': both views are the plain image, normalised exactly like toNormalizedTensor", () => {
  for (const c of [1, 3] as const) {
    const imgs = uint8Images(4, c, 16, 16, c);
    const { student, teacher } = pair(imgs, augmentConfig({ scheme: 'none', size: 16, channels: c }), 1);
    assert.notEqual(student, teacher);
    sameBits(student, teacher, 'student = teacher');
    const nhwc = imgs.permute(0, 2, 3, 1).contiguous().toTypedArray() as Uint8Array;
    const cfg = augmentConfig({ channels: c });
    sameBits(student, toNormalizedTensor(nhwc, 4, 16, 16, c, cfg.mean, cfg.std), 'plain normalisation');
    // Two handles on one storage: disposing one leaves the other.
    student.dispose();
    assert.equal(teacher.shape[0], 4);
    teacher.dispose();
    // Another size: the centred square, resized.
    const wide = uint8Images(2, c, 20, 30, 5);
    const p = pair(wide, augmentConfig({ scheme: 'none', size: 12, channels: c }), 1);
    const expect = normalize(resizedCrop(wide.float(), centerSquareBoxes(2, 20, 30), 12).div(255), cfg.mean, cfg.std);
    assert.deepEqual(Array.from(centerSquareBoxes(1, 20, 30)), [0, 5, 20, 20]);
    sameBits(p.student, expect, 'resized plain view');
    sameBits(p.teacher, expect, 'resized plain view (teacher)');
  }
});

test('shared schemes give identical views; shared-crop+color shares the crop but not the colour; two-views share nothing', () => {
  const imgs = uint8Images(8, 3, 32, 32, 21);
  const noColor = { jitter: { p: 0 }, grayscaleP: 0 };
  for (const scheme of ['color', 'crop', 'crop+color'] as const) {
    const { student, teacher } = pair(imgs, augmentConfig({ scheme, size: 24 }), 2);
    assert.deepEqual(student.shape, [8, 3, 24, 24]);
    assert.equal(student.dtype, 'float32');
    sameBits(student, teacher, scheme);
  }
  // Colour off: the shared crop gives equal views, independent crops do not.
  const shared = pair(imgs, augmentConfig({ scheme: 'shared-crop+color', size: 24, ...noColor }), 3);
  sameBits(shared.student, shared.teacher, 'shared crop, no colour');
  // ... and that view is the 'crop' scheme's view for the same seed.
  sameBits(shared.student, pair(imgs, augmentConfig({ scheme: 'crop', size: 24 }), 3).student, "= 'crop'");
  const two = pair(imgs, augmentConfig({ scheme: 'two-views', size: 24, ...noColor }), 3);
  for (let i = 0; i < 8; i++) assert.ok(differs(two.student.narrow(0, i, 1), two.teacher.narrow(0, i, 1)), `two-views image ${i} differs`);
  // Colour on (always): the shared crop's views differ.
  const coloured = pair(imgs, augmentConfig({ scheme: 'shared-crop+color', size: 24, jitter: { p: 1 } }), 3);
  for (let i = 0; i < 8; i++) assert.ok(differs(coloured.student.narrow(0, i, 1), coloured.teacher.narrow(0, i, 1)), `colour image ${i} differs`);
  // Brightness only, no clipping (pixels <= 128, factor <= 1.4): the views are
  // the same crop scaled by a per-image factor, so their ratio is constant per image.
  const dim = et.scope(() => imgs.div(2, 'floor').to('uint8'));
  const cfg = augmentConfig({ scheme: 'shared-crop+color', size: 24, jitter: { brightness: 0.4, contrast: 0, saturation: 0, hue: 0, p: 1 }, grayscaleP: 0, mean: [0, 0, 0], std: [1, 1, 1] });
  const b = pair(dim, cfg, 4);
  for (let i = 0; i < 8; i++) {
    const s = floats(b.student.narrow(0, i, 1));
    const t = floats(b.teacher.narrow(0, i, 1));
    const k = s.reduce((a, v) => a + v, 0) / t.reduce((a, v) => a + v, 0);
    s.forEach((v, j) => assert.ok(Math.abs(v - k * t[j]!) < 1e-5, `image ${i} pixel ${j}: ${v} vs ${k} * ${t[j]}`));
  }
  // Different images of a batch get their own crops.
  const same = et.scope(() => imgs.narrow(0, 0, 1).expand(8, 3, 32, 32).contiguous());
  const cropped = pair(same, augmentConfig({ scheme: 'crop', size: 24 }), 5).student;
  assert.ok(differs(cropped.narrow(0, 0, 1), cropped.narrow(0, 1, 1)), 'per-image crops');
});

test('augmentPair = the exported pieces composed with the same generator (the in-place pipeline changes no value)', () => {
  for (const c of [1, 3] as const) {
    const imgs = uint8Images(5, c, 30, 26, 50 + c);
    for (const scheme of ['crop+color', 'shared-crop+color', 'two-views'] as const) {
      const cfg = augmentConfig({ scheme, size: 16, channels: c, jitter: { p: 0.6 }, grayscaleP: 0.5 });
      const got = pair(imgs, cfg, 77);
      const g = et.Generator.create(77);
      const x = imgs.float();
      const crop = () => {
        const boxes = randomResizedCropBoxes(5, 30, 26, cfg.scale, cfg.ratio, g);
        const flips = et.rand([5], { generator: g }).lt(cfg.flipP);
        return resizedCrop(x, boxes, 16, flips).div(255);
      };
      const colour = (v: et.Tensor) => normalize(randomGrayscale(colorJitter(v, cfg.jitter, g), cfg.grayscaleP, g), cfg.mean, cfg.std);
      let student: et.Tensor;
      let teacher: et.Tensor;
      if (scheme === 'crop+color') {
        student = teacher = colour(crop());
      } else if (scheme === 'shared-crop+color') {
        const v = crop();
        student = colour(v);
        teacher = colour(v);
      } else {
        const a = crop();
        const b = crop();
        student = colour(a);
        teacher = colour(b);
      }
      sameBits(got.student, student, `${scheme}/${c}: student`);
      sameBits(got.teacher, teacher, `${scheme}/${c}: teacher`);
    }
  }
});

test('a host generator takes the draws read back to JS: crops from it, flips from the device generator; seeded; CPU only', () => {
  const imgs = uint8Images(5, 3, 30, 26, 61);
  const cfg = augmentConfig({ scheme: 'crop', size: 16 });
  const got = augmentPair(imgs, cfg, et.Generator.create(77), et.Generator.create(99));
  const expected = et.scope(() => {
    const boxes = randomResizedCropBoxes(5, 30, 26, cfg.scale, cfg.ratio, et.Generator.create(99));
    const flips = et.rand([5], { generator: et.Generator.create(77) }).lt(cfg.flipP);
    return normalize(resizedCrop(imgs.float(), boxes, 16, flips).div(255), cfg.mean, cfg.std);
  });
  sameBits(got.student, expected, 'crop boxes from the host generator');
  assert.ok(differs(got.student, pair(imgs, cfg, 77).student), 'differs from drawing the crops on the device generator');
  const coloured = augmentConfig({ scheme: 'two-views', size: 16, jitter: { p: 1 } });
  const a = augmentPair(imgs, coloured, et.Generator.create(5), et.Generator.create(6));
  const b = augmentPair(imgs, coloured, et.Generator.create(5), et.Generator.create(6));
  sameBits(a.teacher, b.teacher, 'seeded with both generators');
  assert.throws(() => augmentPair(imgs, cfg, et.Generator.create(5), { device: 'cuda:0' } as unknown as et.Generator), /Expected a CPU generator for hostGenerator but received one on cuda:0/);
});

test('every scheme: seeded bit-exactly, other seeds differ, values in range, 1 and 3 channels, no leaks', () => {
  for (const c of [1, 3] as const) {
    const imgs = uint8Images(6, c, 28, 28, 30 + c);
    for (const scheme of AUGMENT_SCHEMES) {
      const cfg = augmentConfig({ scheme, size: 20, channels: c });
      const before = et.memory().liveTensors;
      const a = pair(imgs, cfg, 42);
      const b = pair(imgs, cfg, 42);
      const other = pair(imgs, cfg, 43);
      assert.deepEqual(a.student.shape, [6, c, 20, 20]);
      sameBits(a.student, b.student, `${scheme}/${c}: student`);
      sameBits(a.teacher, b.teacher, `${scheme}/${c}: teacher`);
      if (scheme !== 'none') assert.ok(differs(a.student, other.student) || differs(a.teacher, other.teacher), `${scheme}/${c}: seed matters`);
      for (const v of [a.student, a.teacher]) {
        const raw = et.scope(() => v.mul(et.tensor(cfg.std).view(1, c, 1, 1)).add(et.tensor(cfg.mean).view(1, c, 1, 1)));
        const vals = floats(raw);
        assert.ok(vals.every((p) => p >= -1e-6 && p <= 1 + 1e-6), `${scheme}/${c}: values in [0, 1]`);
        raw.dispose();
      }
      for (const p of [a, b, other]) {
        p.student.dispose();
        p.teacher.dispose();
      }
      assert.equal(et.memory().liveTensors, before, `${scheme}/${c}: no tensors left behind`);
    }
  }
});

// ---- configuration and errors ---------------------------------------------------------------

test('augmentConfig: documented defaults, partial overrides, per-channel normalisation', () => {
  const d = augmentConfig();
  assert.deepEqual(d, {
    scheme: 'shared-crop+color', size: 224, scale: [0.2, 1], ratio: [3 / 4, 4 / 3], flipP: 0.5,
    jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 }, grayscaleP: 0.2,
    mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
  });
  const g = augmentConfig({ channels: 1, size: 28, jitter: { hue: 0 } });
  assert.deepEqual([g.mean, g.std, g.size, g.jitter.hue, g.jitter.brightness], [[0.5], [0.5], 28, 0, 0.4]);
  assert.deepEqual(augmentConfig({ mean: [0.1], std: [0.3] }).mean, [0.1]);
  assert.deepEqual(augmentConfig({ std: [0.3] }).mean, [0.5]);
});

test('bad inputs give clear errors', () => {
  const cfg = augmentConfig({ size: 8 });
  const imgs = uint8Images(2, 3, 10, 10, 1);
  assert.throws(() => augmentPair(imgs.float(), cfg), /Expected uint8 images/);
  assert.throws(() => augmentPair(imgs.select(0, 0), cfg), /4 dimensions/);
  assert.throws(() => augmentPair(uint8Images(2, 2, 10, 10, 1), cfg), /1 or 3 channels/);
  assert.throws(() => augmentPair(uint8Images(2, 1, 10, 10, 1), cfg), /Expected 1 mean value/);
  assert.throws(() => augmentPair(imgs, { ...cfg, flipP: 2 }), /probability in \[0, 1\] for flipP/);
  assert.throws(() => augmentConfig({ scale: [1, 0.2] }), /scale as \[min, max\] with min <= max/);
  assert.throws(() => augmentConfig({ scale: [0, 1] }), /scale within \(0, 1\]/);
  assert.throws(() => augmentConfig({ scale: [0.5, 1.5] }), /scale within/);
  assert.throws(() => augmentConfig({ ratio: [4 / 3, 3 / 4] }), /ratio as \[min, max\] with min <= max/);
  assert.throws(() => augmentConfig({ ratio: [0, 1] }), /ratio within/);
  assert.throws(() => augmentConfig({ grayscaleP: -0.1 }), /probability in \[0, 1\] for grayscaleP/);
  assert.throws(() => augmentConfig({ jitter: { p: 1.1 } }), /probability in \[0, 1\] for jitter.p/);
  assert.throws(() => augmentConfig({ jitter: { hue: 0.6 } }), /\[0, 0.5\] for jitter.hue/);
  assert.throws(() => augmentConfig({ jitter: { brightness: -1 } }), /jitter.brightness/);
  assert.throws(() => augmentConfig({ size: 0 }), /positive integer size/);
  assert.throws(() => augmentConfig({ scheme: 'both' as never }), /scheme to be one of 'none', 'color'/);
  assert.throws(() => augmentConfig({ mean: [0.5, 0.5] }), /Expected 3 mean value/);
  assert.throws(() => augmentConfig({ channels: 1, std: [0.5, 0.5, 0.5] }), /Expected 1 std value/);
  assert.throws(() => augmentConfig({ std: [1, 0, 1] }), /std values > 0/);
  assert.throws(() => augmentConfig({ channels: 2 as never }), /1 or 3 channels/);
  assert.throws(() => augmentConfig({ flip: 0.5 } as never), /Unknown augmentation option "flip"/);
  assert.throws(() => augmentConfig({ jitter: { hu: 0.1 } as never }), /Unknown jitter option "hu"/);
  const x = et.rand([2, 3, 10, 10]);
  assert.throws(() => resizedCrop(x, [0, 0, 10, 10, 0, 1, 10, 10], 8), /box 1 .* inside the 10 x 10 image/);
  assert.throws(() => resizedCrop(x, [0, 0, 10, 10], 8), /Expected 8 box numbers/);
  assert.throws(() => resizedCrop(imgs, [0, 0, 10, 10, 0, 0, 10, 10], 8), /float32 or float64 images/);
  assert.throws(() => resizedCrop(x, [0, 0, 10, 10, 0, 0, 10, 10], 8, [true]), /2 flip flags/);
  assert.throws(() => adjustBrightness(x, [1, 2, 3]), /2 brightness factors/);
  assert.throws(() => adjustHue(imgs, 0.1), /floating-point/);
  assert.throws(() => randomResizedCropBoxes(0, 10, 10, [0.2, 1], [0.75, 1.33]), /positive integer for the batch size/);
  assert.throws(() => applyColorJitter(x, { order: ['brightness', 'brightness'] }), /distinct ops/);
});
