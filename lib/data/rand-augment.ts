// RandAugment for fine-tuning, as timm's rand_augment_transform that the
// authors' BEiT-based fine-tuning runs ('rand-m9-mstd0.5-inc1'): per image,
// `ops` operations drawn uniformly with replacement from the op set, each
// applied with probability 0.5 at a magnitude ~ N(m, mstd) clipped to
// [0, 10], with timm's level-to-argument functions (timm/data/auto_augment.py).
//
// The reference is timm's own PIL ops (what the authors' pipeline runs on
// uint8 PIL images), not torchvision's functional ops: torchvision has no
// CPU build for our torch here, and timm does not use it for RandAugment.
// To match PIL, the batch is first quantised to 8-bit levels (round(255 x):
// the pipeline feeds RandAugment uint8 images) and every op rounds its
// result to a level as PIL does (truncating blends, rounding the smoothing
// filter...). The point ops, AutoContrast, Equalize and the ImageEnhance
// blends then equal PIL's output exactly. The geometric ops (Rotate,
// ShearX/Y, TranslateX/YRel) write out PIL's affine transform with its
// bilinear filter (pixel-centre geometry, edge clamping, constant fill 128,
// truncation) in float64 in PIL's order of operations; they equal PIL in the
// tests too, but are only promised to within one level on 0.1% of the values
// (the rotation matrix is rounded to 15 digits differently than Python's
// round, and a value landing on an integer can then truncate either way).
// timm draws bilinear or bicubic at random per op (BEiT passes bicubic);
// here it is always bilinear.
//
// Batched: per layer, images are grouped by the op they drew and each group
// runs as one batched op with per-image arguments (index_select, op,
// index_copy); only the B x ops draws are handled in JS.
import { arange, fromTypedArray } from '../tensor/creation';
import { where } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { Tensor } from '../tensor/tensor';
import * as aten from '../tensor/ops.generated';
import type { Generator } from '../runtime/generator';
import { fail, intInRange, nonNegativeFinite, probability } from '../checks';
import { checkImages, drawUniform } from './color';

export interface RandAugmentConfig {
  /** Ops per image ('n', timm default 2). */
  ops: number;
  /** Magnitude ('m', 0..magnitudeMax). */
  magnitude: number;
  /** Std of the per-op magnitude noise ('mstd'); Infinity: uniform on [0, magnitude]. */
  magnitudeStd: number;
  /** The 'increasing' op set ('inc1'), whose severity grows with the magnitude. */
  increasing: boolean;
  /** Probability of applying each drawn op ('p'). Default 0.5. */
  prob?: number;
  /** Upper clip of the magnitude ('mmax'). Default 10. */
  magnitudeMax?: number;
  /** Fill level (0..255) of the geometric ops outside the image. Default 128 (timm's _FILL). */
  fill?: number;
}

export const RAND_AUGMENT_OPS = Object.freeze([
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness',
  'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
] as const);
export const RAND_AUGMENT_INCREASING_OPS = Object.freeze([
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd', 'ColorIncreasing',
  'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
] as const);
export type AugmentOpName = (typeof RAND_AUGMENT_OPS)[number] | (typeof RAND_AUGMENT_INCREASING_OPS)[number];
const ALL_OPS: readonly string[] = [...new Set([...RAND_AUGMENT_OPS, ...RAND_AUGMENT_INCREASING_OPS])];

/** Parses timm's RandAugment spec: 'rand' then dash-separated m<int>, n<int>, p<float>, mstd<float>, mmax<int>, inc<0|1>. */
export function parseRandAugment(spec: string): RandAugmentConfig {
  if (typeof spec !== 'string') fail("a RandAugment spec such as 'rand-m9-mstd0.5-inc1'", 'the RandAugment spec', spec, TypeError);
  const [head, ...parts] = spec.split('-');
  if (head !== 'rand') fail("a RandAugment spec starting with 'rand' (e.g. 'rand-m9-mstd0.5-inc1')", 'the RandAugment spec', spec);
  const cfg: RandAugmentConfig = { ops: 2, magnitude: 10, magnitudeStd: 0, increasing: false, prob: 0.5, magnitudeMax: 10 };
  for (const part of parts) {
    const m = /^(mstd|mmax|inc|m|n|p)(\d.*)$/.exec(part);
    if (m === null) fail('sections m<int>, n<int>, p<float>, mstd<float>, mmax<int> or inc<0|1>', `the RandAugment spec "${spec}"`, part);
    const [, key, val] = m;
    const num = Number(val);
    if (!Number.isFinite(num)) fail(`a number after "${key}"`, `the RandAugment spec "${spec}"`, part);
    if (key === 'mstd') cfg.magnitudeStd = num > 100 ? Infinity : num;
    else if (key === 'mmax') cfg.magnitudeMax = Math.trunc(num);
    else if (key === 'inc') cfg.increasing = Math.trunc(num) !== 0;
    else if (key === 'm') cfg.magnitude = Math.trunc(num);
    else if (key === 'n') cfg.ops = Math.trunc(num);
    else cfg.prob = num;
  }
  checkConfig(cfg);
  return cfg;
}

function checkConfig(cfg: RandAugmentConfig): void {
  if (typeof cfg !== 'object' || cfg === null) fail('a RandAugment config object', 'the RandAugment config', cfg, TypeError);
  intInRange(cfg.ops, 'the RandAugment ops per image', 0, 64);
  nonNegativeFinite(cfg.magnitude, 'the RandAugment magnitude');
  if (typeof cfg.magnitudeStd !== 'number' || !(cfg.magnitudeStd >= 0)) fail('a number >= 0 (or Infinity)', 'the RandAugment magnitudeStd', cfg.magnitudeStd);
  if (typeof cfg.increasing !== 'boolean') fail('a boolean', 'the RandAugment increasing flag', cfg.increasing, TypeError);
  if (cfg.prob !== undefined) probability(cfg.prob, 'the RandAugment op probability');
  if (cfg.magnitudeMax !== undefined) nonNegativeFinite(cfg.magnitudeMax, 'the RandAugment magnitudeMax');
  if (cfg.fill !== undefined && !(typeof cfg.fill === 'number' && cfg.fill >= 0 && cfg.fill <= 255)) fail('a fill level in [0, 255]', 'the RandAugment fill', cfg.fill);
}

// ---- level -> argument (timm's LEVEL_TO_ARG, _LEVEL_DENOM = 10) -------------------

/** The op's argument at `level` (already clipped); `negate` is timm's _randomly_negate coin. */
export function opArgument(name: AugmentOpName, level: number, negate: boolean): number {
  const l = level / 10;
  const sign = negate ? -1 : 1;
  switch (name) {
    case 'AutoContrast': case 'Equalize': case 'Invert': return 0;
    case 'Rotate': return sign * l * 30;
    case 'Posterize': return Math.trunc(l * 4);
    case 'PosterizeIncreasing': return 4 - Math.trunc(l * 4);
    case 'Solarize': return Math.min(256, Math.trunc(l * 256));
    case 'SolarizeIncreasing': return 256 - Math.min(256, Math.trunc(l * 256));
    case 'SolarizeAdd': return Math.min(128, Math.trunc(l * 110));
    case 'Color': case 'Contrast': case 'Brightness': case 'Sharpness': return l * 1.8 + 0.1;
    case 'ColorIncreasing': case 'ContrastIncreasing': case 'BrightnessIncreasing': case 'SharpnessIncreasing':
      return Math.max(0.1, 1 + sign * l * 0.9);
    case 'ShearX': case 'ShearY': return sign * l * 0.3;
    case 'TranslateXRel': case 'TranslateYRel': return sign * l * 0.45;
  }
}

// ---- the ops on 8-bit levels (float tensors holding integers 0..255) ------------------

type Ops = (v: Tensor, a: Tensor, fill: number) => Tensor;

/** [k] -> [k, 1, 1, 1] */
const per = (a: Tensor) => a.view(-1, 1, 1, 1);
/** [k, H, W] -> [k, 1, H W] */
const per3 = (a: Tensor) => a.reshape(a.shape[0]!, 1, -1);

/** PIL's RGB -> L: (19595 R + 38470 G + 7471 B + 32768) >> 16 (exact in float64), [k, 1, H, W]. */
function luma8(v: Tensor): Tensor {
  if (v.shape[1] === 1) return v.double();
  const d = v.double();
  const s = d.narrow(1, 0, 1).mul(19595).add_(d.narrow(1, 1, 1).mul(38470)).add_(d.narrow(1, 2, 1).mul(7471)).add_(32768);
  return aten.floor_(s.div_(65536));
}

/** PIL's Image.blend(deg, img, alpha) on 8-bit images: float32 deg + alpha (img - deg), clipped, truncated. */
function blend(deg: Tensor, v: Tensor, alpha: Tensor): Tensor {
  const d = deg.to('float32');
  return aten.floor_(v.to('float32').sub(d).mul_(per(alpha.to('float32'))).add_(d).clamp_(0, 255));
}

/** PIL's ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, / 13, rounded); the border pixels are kept. */
function smooth(v: Tensor): Tensor {
  const [, c, h, w] = v.shape as number[];
  if (h! < 3 || w! < 3) return v.clone();
  const kernel = fromTypedArray(new Float64Array([1, 1, 1, 1, 5, 1, 1, 1, 1]), [1, 1, 3, 3], { device: v.device }).expand(c!, 1, 3, 3).contiguous();
  const inner = aten.floor_(aten.conv2d(v.double(), kernel, null, 1, 0, 1, c!).div_(13).add_(0.5));
  const out = v.double().clone();
  out.narrow(2, 1, h! - 2).narrow(3, 1, w! - 2).copy_(inner);
  return out;
}

function autoContrast(v: Tensor): Tensor {
  const d = v.double();
  const lo = d.amin([2, 3], true);
  const hi = d.amax([2, 3], true);
  const scale = aten.full_like(lo, 255).div_(hi.sub(lo)); // 255.0 / (hi - lo) as PIL (not 255 * (1 / ...))
  const offset = lo.neg().mul_(scale);
  const y = aten.trunc_(d.mul(scale).add_(offset).clamp_(0, 255));
  return where(hi.le(lo), d, y);
}

/** PIL's ImageOps.equalize per channel: lut[i] = (step // 2 + #pixels below i) // step, step = (N - #max) // 255. */
function equalize(v: Tensor): Tensor {
  const [k, c, h, w] = v.shape as number[];
  const n = h! * w!;
  const idx = v.reshape(k! * c!, n).to('int64');
  const hist = aten.scatter_add_(aten.zeros([k! * c!, 256], 'float64', null, v.device), 1, idx, aten.ones([k! * c!, n], 'float64', null, v.device));
  const top = idx.amax(1, true);
  const step = aten.floor_(hist.gather(1, top).neg_().add_(n).div_(255));
  const below = hist.cumsum(1).sub_(hist);
  const lut = aten.floor_(below.add_(aten.floor_(step.div(2))).div_(step.clampMin(1))).clamp_(0, 255);
  const mapped = lut.gather(1, idx);
  return where(step.gt(0), mapped, idx.double()).view(k!, c!, h!, w!);
}

/** Output pixel centres mapped through per-image affine maps [k, 6] (PIL's data order), bilinear, fill outside. */
function affine(v: Tensor, m: Tensor, fill: number): Tensor {
  const [k, , h, w] = v.shape as number[];
  const xs = arange(0.5, w!, 1, { dtype: 'float64', device: v.device }).view(1, 1, w!);
  const ys = arange(0.5, h!, 1, { dtype: 'float64', device: v.device }).view(1, h!, 1);
  const coef = (i: number) => m.select(1, i).view(k!, 1, 1);
  const xin = xs.mul(coef(0)).add(ys.mul(coef(1))).add_(coef(2));
  const yin = xs.mul(coef(3)).add(ys.mul(coef(4))).add_(coef(5));
  // PIL's bilinear filter, written out in float64 in its own order of
  // operations (x = xin - 0.5, dx = x - floor(x), v = a + (b - a) dx per row,
  // then between rows), neighbours clamped to the edge, the result
  // truncated to a level; a centre outside [0, W) x [0, H) takes the fill.
  const x = xin.sub(0.5);
  const y = yin.sub(0.5);
  const x0 = aten.floor(x);
  const y0 = aten.floor(y);
  const dx = per3(x.sub(x0));
  const dy = per3(y.sub(y0));
  const c = v.shape[1]!;
  const flat = v.double().reshape(k!, c, h! * w!);
  const col = (t: Tensor) => t.clamp(0, w! - 1);
  const row = (t: Tensor) => t.clamp(0, h! - 1).mul_(w!);
  const at = (r: Tensor, q: Tensor) => flat.gather(2, r.add(q).to('int64').reshape(k!, 1, h! * w!).expand(k!, c, h! * w!));
  const [xa, xb, ya, yb] = [col(x0), col(x0.add(1)), row(y0), row(y0.add(1))];
  const lerp = (a: Tensor, b: Tensor, d: Tensor) => b.sub(a).mul_(d).add_(a);
  const v1 = lerp(at(ya, xa), at(ya, xb), dx);
  const v2 = lerp(at(yb, xa), at(yb, xb), dx);
  const s = aten.trunc_(lerp(v1, v2, dy)).view(k!, c, h!, w!);
  const inside = xin.ge(0).logicalAnd(xin.lt(w!)).logicalAnd(yin.ge(0)).logicalAnd(yin.lt(h!)).unsqueeze(1);
  return where(inside, s, fill);
}

/** Rows [a, b, c, d, e, f] per image (float64 [k, 6]) from a JS builder. */
function matrices(a: Tensor, build: (t: number) => number[]): Tensor {
  const args = a.to('float64').toTypedArray() as Float64Array;
  const out = new Float64Array(6 * args.length);
  args.forEach((t, i) => out.set(build(t), 6 * i));
  return fromTypedArray(out, [args.length, 6], { device: a.device });
}

function rotation(deg: number, w: number, h: number): number[] {
  // PIL's Image.rotate(expand=False): the inverse rotation about (w/2, h/2).
  const r = (x: number) => Math.round(x * 1e15) / 1e15;
  const t = -(deg % 360) * (Math.PI / 180);
  const [a, b, d, e] = [r(Math.cos(t)), r(Math.sin(t)), r(-Math.sin(t)), r(Math.cos(t))];
  const cx = w / 2;
  const cy = h / 2;
  return [a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy];
}

const OPS: Record<AugmentOpName, Ops> = {
  AutoContrast: (v) => autoContrast(v),
  Equalize: (v) => equalize(v),
  Invert: (v) => v.neg().add_(255),
  Rotate: (v, a, fill) => affine(v, matrices(a, (t) => rotation(t, v.shape[3]!, v.shape[2]!)), fill),
  Posterize: (v, a) => posterize(v, a),
  PosterizeIncreasing: (v, a) => posterize(v, a),
  Solarize: (v, a) => where(v.lt(per(a)), v, v.neg().add_(255)),
  SolarizeIncreasing: (v, a) => where(v.lt(per(a)), v, v.neg().add_(255)),
  SolarizeAdd: (v, a) => where(v.lt(128), v.add(per(a)).clamp_(0, 255), v),
  Color: (v, a) => blend(luma8(v).expand(v.shape), v, a),
  ColorIncreasing: (v, a) => blend(luma8(v).expand(v.shape), v, a),
  Contrast: (v, a) => contrast(v, a),
  ContrastIncreasing: (v, a) => contrast(v, a),
  Brightness: (v, a) => blend(aten.zeros_like(v), v, a),
  BrightnessIncreasing: (v, a) => blend(aten.zeros_like(v), v, a),
  Sharpness: (v, a) => blend(smooth(v), v, a),
  SharpnessIncreasing: (v, a) => blend(smooth(v), v, a),
  ShearX: (v, a, fill) => affine(v, matrices(a, (t) => [1, t, 0, 0, 1, 0]), fill),
  ShearY: (v, a, fill) => affine(v, matrices(a, (t) => [1, 0, 0, t, 1, 0]), fill),
  TranslateXRel: (v, a, fill) => affine(v, matrices(a, (t) => [1, 0, t * v.shape[3]!, 0, 1, 0]), fill),
  TranslateYRel: (v, a, fill) => affine(v, matrices(a, (t) => [1, 0, 0, 0, 1, t * v.shape[2]!]), fill),
};

/** ImageOps.posterize: keep the top `bits` bits (0 bits: black). */
function posterize(v: Tensor, bits: Tensor): Tensor {
  const s = aten.exp2(per(bits.to('float32').neg().add_(8)));
  return aten.floor_(v.div(s)).mul_(s);
}

/** ImageEnhance.Contrast: blend with the constant int(mean(L) + 0.5). */
function contrast(v: Tensor, a: Tensor): Tensor {
  const mean = aten.floor_(luma8(v).mean([1, 2, 3], true).add_(0.5));
  return blend(mean.expand(v.shape), v, a);
}

/** Images in [0, 1] -> 8-bit levels as float32 (the uint8 images timm's pipeline feeds PIL). */
function toLevels(x: Tensor): Tensor {
  return aten.round_(x.to('float32').mul(255)).clamp_(0, 255);
}

function checkFloat01(images: unknown): Tensor {
  const x = checkImages(images);
  if (x.dtype !== 'float32' && x.dtype !== 'float64') fail('float32 or float64 images in [0, 1]', 'RandAugment', x.dtype, TypeError);
  return x;
}

/**
 * @internal One op on every image with its own argument (what opArgument
 * returns), images in [0, 1] quantised to 8-bit levels; returns levels / 255
 * in the images' dtype. The test entry point against timm's PIL ops.
 */
export function applyAugmentOp(images: Tensor, name: AugmentOpName, args: readonly number[], fill = 128): Tensor {
  const x = checkFloat01(images);
  if (!ALL_OPS.includes(name)) fail(`one of ${ALL_OPS.join(', ')}`, 'the RandAugment op', name);
  if (args.length !== x.shape[0]) fail(`${x.shape[0]} op arguments, one per image`, name, args.length);
  return scope(() => {
    const a = fromTypedArray(Float64Array.from(args), [args.length], { device: x.device });
    return OPS[name](toLevels(x), a, fill).div(255).to(x.dtype);
  });
}

/** Uniforms drawn per image and op layer: op choice, apply, two for the magnitude noise, negate. */
const DRAWS = 5;

/**
 * RandAugment on a batch of float images in [0, 1] ([B, C, H, W], C = 1 or 3);
 * returns a new tensor of the same shape and dtype holding 8-bit levels / 255.
 * Draws B x ops x 5 float64 uniforms from `generator` (the default
 * generators when omitted): per image and layer the op (uniform over the
 * set), whether it applies (u < prob), the magnitude noise (Box-Muller from
 * two uniforms; with magnitudeStd Infinity the first is U(0, m)) and the
 * sign coin of the ops that take one (negative when u > 0.5, as timm).
 */
export function randAugment(images: Tensor, cfg: RandAugmentConfig, generator?: Generator): Tensor {
  const x = checkFloat01(images);
  checkConfig(cfg);
  const names: readonly AugmentOpName[] = cfg.increasing ? RAND_AUGMENT_INCREASING_OPS : RAND_AUGMENT_OPS;
  const prob = cfg.prob ?? 0.5;
  const upper = cfg.magnitudeMax || 10;
  const fill = cfg.fill ?? 128;
  const b = x.shape[0]!;
  return scope(() => {
    const u = drawUniform([b, cfg.ops, DRAWS], generator?.device ?? 'cpu', generator, 'float64').toTypedArray() as Float64Array;
    const v = toLevels(x);
    for (let layer = 0; layer < cfg.ops; layer++) {
      const groups = new Map<AugmentOpName, { index: number[]; args: number[] }>();
      for (let i = 0; i < b; i++) {
        const o = (i * cfg.ops + layer) * DRAWS;
        const name = names[Math.min(names.length - 1, Math.floor(u[o]! * names.length))]!;
        if (!(u[o + 1]! < prob)) continue;
        let m = cfg.magnitude;
        if (cfg.magnitudeStd === Infinity) m = u[o + 2]! * cfg.magnitude;
        else if (cfg.magnitudeStd > 0) m += cfg.magnitudeStd * Math.sqrt(-2 * Math.log(1 - u[o + 2]!)) * Math.cos(2 * Math.PI * u[o + 3]!);
        const level = Math.max(0, Math.min(m, upper));
        const g = groups.get(name) ?? { index: [], args: [] };
        g.index.push(i);
        g.args.push(opArgument(name, level, u[o + 4]! > 0.5));
        groups.set(name, g);
      }
      for (const [name, g] of groups) {
        const idx = fromTypedArray(BigInt64Array.from(g.index, BigInt), [g.index.length], { device: x.device });
        const a = fromTypedArray(Float64Array.from(g.args), [g.args.length], { device: x.device });
        const out = OPS[name](v.indexSelect(0, idx), a, fill).to('float32');
        aten.index_copy_(v, 0, idx, out);
      }
    }
    return v.div_(255).to(x.dtype);
  });
}
