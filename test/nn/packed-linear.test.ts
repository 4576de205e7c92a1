// Packed Linear layers for inference (lib/tensor/packed-linear.ts,
// native/panel_linear.cc, Linear.packForInference, nn.packForInference):
// both kernels' values against PyTorch's F.linear / F.gelu over the shapes
// their tiling splits differently, the fallbacks (gradients on, other
// dtypes), staleness after in-place and replacing changes, the ViT encoder
// end to end, memory, and bad input.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as et from '../../lib';
import { runOracle } from '../helpers/oracle';
import { withEnv } from '../helpers/env';
import { assertClose, assertCloseToScale, assertMatchesOracle } from '../helpers/compare';

const { Linear, Mlp, PatchEmbed, PatchProjection, VisionTransformer, packForInference, unpackAll, withPackedLinears } = et.nn;
const available = et.packedLinearAvailable();
const skip = available ? false : 'neither packed kernel runs here';
const kernels = et.PACKED_KERNELS.filter(et.packedKernelAvailable);

test('the default kernel is panels on an AVX-512 CPU, else oneDNN; EXTREMA_PACKED_LINEAR picks one', () => {
  const avx512 = process.platform === 'linux' && /avx512f/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  assert.equal(et.packedKernelAvailable('panels'), process.arch === 'x64' && avx512);
  assert.equal(et.defaultPackedKernel(), kernels[0] ?? null);
  assert.equal(withEnv('EXTREMA_PACKED_LINEAR', 'onednn', et.defaultPackedKernel), et.packedKernelAvailable('onednn') ? 'onednn' : null);
  assert.throws(() => withEnv('EXTREMA_PACKED_LINEAR', 'mkl', et.defaultPackedKernel), /Expected one of panels, onednn for EXTREMA_PACKED_LINEAR but received the string "mkl"/);
});

// Rows: 1 (a lone class token), 5 and 49 (one block, tiles of 5-6 rows), 97
// and 200 (blocks of even height); widths across panel edges (64, 70, 160);
// depths that are not a multiple of anything (33).
const SHAPES: [number[], number, number][] = [[[1, 192], 192, 768], [[5, 33], 33, 70], [[49, 192], 192, 192], [[2, 49, 96], 96, 160], [[97, 64], 64, 64], [[200, 33], 33, 130]];

for (const kernel of kernels) {
  test(`the ${kernel} kernel matches PyTorch's F.linear and F.gelu(F.linear) across tile and panel edges`, () => {
    et.manualSeed(13);
    const cases: { name: string; inputs: string[]; py: string; grad: boolean }[] = [];
    const inputs = new Map<string, et.Tensor>();
    const ours = new Map<string, et.Tensor>();
    SHAPES.forEach(([xShape, k, n], i) => {
      const x = et.randn(xShape);
      const w = et.randn([n, k]).mul(0.1);
      const b = et.randn([n]);
      const packed = et.packLinearWeight(w, { kernel });
      assert.equal(et.packedKernelOf(packed), kernel);
      ours.set(`plain${i}`, et.packedLinear(x, packed, b));
      ours.set(`gelu${i}`, et.packedLinear(x, packed, null, 'gelu'));
      cases.push({ name: `plain${i}`, inputs: ['x', 'w', 'b'], py: 'F.linear(x, w, b)', grad: false });
      cases.push({ name: `gelu${i}`, inputs: ['x', 'w'], py: 'F.gelu(F.linear(x, w))', grad: false });
      for (const [name, v] of Object.entries({ x, w, b })) {
        inputs.set(`plain${i}/${name}`, v);
        if (name !== 'b') inputs.set(`gelu${i}/${name}`, v);
      }
    });
    const theirs = runOracle('ops_oracle.py', { cases }, inputs);
    assertMatchesOracle(ours, theirs, cases.map((c) => c.name), kernel);
  });
}

test('the panels kernel gives bit-identical results on 1 and 2 threads, and for a strided input', { skip: et.packedKernelAvailable('panels') ? false : 'no AVX-512 here' }, () => {
  et.manualSeed(14);
  const w = et.randn([200, 48]);
  const b = et.randn([200]);
  const packed = et.packLinearWeight(w, { kernel: 'panels' });
  const x = et.randn([150, 48]);
  const threads = et.getNumThreads();
  try {
    et.setNumThreads(1);
    const one = et.packedLinear(x, packed, b, 'gelu');
    et.setNumThreads(2);
    const two = et.packedLinear(x, packed, b, 'gelu');
    assert.equal(one.sub(two).abs().max().item(), 0);
  } finally {
    et.setNumThreads(threads);
  }
  const strided = et.randn([48, 30]).transpose(0, 1); // [30, 48], not contiguous
  assert.equal(et.packedLinear(strided, packed, b).sub(et.packedLinear(strided.contiguous(), packed, b)).abs().max().item(), 0);
  assert.deepEqual(et.packedLinear(et.zeros([0, 48]), packed, b).shape, [0, 200], 'no rows: an empty result');
});

test('packedLinear matches PyTorch\'s F.linear and F.gelu(F.linear) (3-D input, with and without bias)', { skip }, () => {
  et.manualSeed(3);
  const x = et.randn([2, 49, 96]);
  const w = et.randn([160, 96]).mul(0.1);
  const b = et.randn([160]);
  const packed = et.packLinearWeight(w);
  const ours = {
    plain: et.packedLinear(x, packed, b),
    gelu: et.packedLinear(x, packed, b, 'gelu'),
    nobias: et.packedLinear(x, packed, null, 'gelu'),
  };
  const cases = [
    { name: 'plain', inputs: ['x', 'w', 'b'], py: 'F.linear(x, w, b)', grad: false },
    { name: 'gelu', inputs: ['x', 'w', 'b'], py: 'F.gelu(F.linear(x, w, b))', grad: false },
    { name: 'nobias', inputs: ['x', 'w'], py: 'F.gelu(F.linear(x, w))', grad: false },
  ];
  const inputs = new Map<string, et.Tensor>();
  for (const c of cases) for (const n of c.inputs) inputs.set(`${c.name}/${n}`, { x, w, b }[n as 'x' | 'w' | 'b']);
  const theirs = runOracle('ops_oracle.py', { cases }, inputs);
  for (const c of cases) assertCloseToScale(ours[c.name as keyof typeof ours], theirs.get(`${c.name}/out0`)!, `packed ${c.name}`);
});

test('a packed Linear gives the plain values with gradients off, and the plain, differentiable path with them on', { skip }, () => {
  et.manualSeed(4);
  const lin = new Linear(64, 48);
  const x = et.randn([5, 64]);
  const plain = et.noGrad(() => lin.forward(x));
  assert.equal(lin.packForInference(), true);
  assert.equal(lin.isPacked, true);
  assertCloseToScale(et.noGrad(() => lin.forward(x)), plain, 'noGrad');
  assertCloseToScale(et.inferenceMode(() => lin.forward(x)), plain, 'inferenceMode');
  assertCloseToScale(et.noGrad(() => lin.forwardGelu(x)), et.noGrad(() => et.gelu(plain)), 'forwardGelu');

  // Gradients on: ATen's linear, so backward works and matches the unpacked layer's.
  const y = lin.forward(x);
  assert.equal(y.gradFn, 'AddmmBackward0');
  y.sum().backward();
  const grad = lin.weight.grad!;
  const ref = new Linear(64, 48);
  ref.loadStateDict(lin.stateDict());
  ref.forward(x).sum().backward();
  assertClose(grad, ref.weight.grad!, 'weight gradient');

  // Under CPU autocast ATen's bfloat16 linear runs, as without packing.
  const auto = et.autocast('cpu', 'bfloat16', () => et.noGrad(() => lin.forward(x)));
  assert.equal(auto.dtype, 'bfloat16');

  // float64 inputs and weights take the plain path.
  lin.to({ dtype: 'float64' });
  const x64 = x.to('float64');
  assert.equal(et.noGrad(() => lin.forward(x64)).dtype, 'float64');
  assert.equal(lin.isPacked, false, 'moving the module dropped the copy');
  assert.equal(lin.packForInference(), false);
});

test('the packed copy follows in-place writes and replaced weights', { skip }, () => {
  et.manualSeed(5);
  const lin = new Linear(32, 16);
  const x = et.randn([3, 32]);
  lin.packForInference();
  const before = et.noGrad(() => lin.forward(x));
  et.noGrad(() => lin.weight.mul_(2));
  const doubled = et.noGrad(() => lin.forward(x));
  const expected = et.noGrad(() => et.linear(x, lin.weight, lin.bias));
  assertCloseToScale(doubled, expected, 'after weight.mul_(2)');
  assert.ok(doubled.sub(before).abs().max().item() as number > 1e-3, 'the output changed with the weight');

  const other = new Linear(32, 16);
  lin.loadStateDict(other.stateDict());
  assertCloseToScale(et.noGrad(() => lin.forward(x)), et.noGrad(() => other.forward(x)), 'after loadStateDict');

  lin.weight = et.zeros([16, 32]);
  assertCloseToScale(et.noGrad(() => lin.forward(x)), lin.bias!.expand([3, 16]).contiguous(), 'after assigning a new weight');
  assert.equal(lin.isPacked, true, 'the new float32 CPU weight was packed');

  // A repack keeps the kernel the layer was packed for.
  for (const kernel of kernels) {
    lin.packForInference(kernel);
    et.noGrad(() => lin.weight.add_(1));
    assertCloseToScale(et.noGrad(() => lin.forward(x)), et.noGrad(() => et.linear(x, lin.weight, lin.bias)), `${kernel} after weight.add_(1)`);
    assert.equal(lin.packedKernel, kernel);
  }
});

test('a packed patch embedding gives the convolution\'s tokens (3 channels, a grid that is not square) and follows its weight', { skip }, () => {
  et.manualSeed(8);
  const embed = new PatchEmbed({ imgSize: [8, 12], patchSize: 4, inChans: 3, embedDim: 20 });
  const x = et.randn([2, 3, 8, 12]);
  const plain = et.noGrad(() => embed.forward(x));
  assert.deepEqual(plain.shape, [2, 6, 20]);
  assert.equal(embed.proj.packForInference(), true);
  assertCloseToScale(et.noGrad(() => embed.forward(x)), plain, 'packed patch embedding');
  et.noGrad(() => embed.proj.weight.mul_(-1));
  const flipped = et.noGrad(() => embed.forward(x));
  embed.proj.unpack();
  assertCloseToScale(flipped, et.noGrad(() => embed.forward(x)), 'after weight.mul_(-1)');
  // Gradients on: the convolution, differentiable.
  embed.proj.packForInference();
  assert.equal(embed.forward(x).gradFn, 'TransposeBackward0');
});

test('Mlp runs fc1 and its GELU as one packed product', { skip }, () => {
  et.manualSeed(6);
  const mlp = new Mlp(24, 96);
  const x = et.randn([2, 7, 24]);
  const plain = et.noGrad(() => mlp.forward(x));
  packForInference(mlp);
  assertCloseToScale(et.noGrad(() => mlp.forward(x)), plain, 'packed Mlp');
});

const packable = (m: et.nn.Module) => [...m.namedModules()].flatMap(([, x]) => (x instanceof Linear || x instanceof PatchProjection ? [x] : []));

test('a packed ViT encoder gives the unpacked features; withPackedLinears unpacks what it packed; dispose frees the copies', { skip }, async () => {
  et.manualSeed(7);
  const vit = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 48, depth: 2, numHeads: 3, classAttentionLayers: 1 }, { seed: 2 });
  vit.eval();
  const x = et.randn([4, 1, 28, 28]);
  const plain = et.noGrad(() => vit.encode(x).instance);
  // Every Linear and the patch embedding's projection.
  const linears = [...vit.namedModules()].filter(([, m]) => m instanceof Linear || m instanceof PatchProjection).length;
  assert.equal(linears, [...vit.namedModules()].filter(([, m]) => m instanceof Linear).length + 1);

  const live = et.memory().liveTensors;
  const report = packForInference(vit);
  assert.deepEqual(report, { packed: linears, linears });
  assert.equal(et.memory().liveTensors, live + linears, 'one packed copy per Linear');
  et.scope(() => assertCloseToScale(et.inferenceMode(() => vit.encode(x).instance), plain, 'packed encoder'));
  unpackAll(vit);
  assert.equal(et.memory().liveTensors, live, 'unpackAll frees the copies');

  packForInference(vit, { kernel: kernels.at(-1)! });
  assert.ok(packable(vit).every((m) => m.packedKernel === kernels.at(-1)));
  unpackAll(vit);
  assert.ok(packable(vit).every((m) => m.packedKernel === null));

  const inside = await withPackedLinears(vit, true, async () => {
    // The serving default, so evaluation and serving give the same features.
    assert.ok(packable(vit).every((m) => m.isPacked && m.packedKernel === et.defaultPackedKernel()));
    return et.noGrad(() => et.scope(() => vit.encode(x).instance)); // the other outputs freed
  });
  assertCloseToScale(inside, plain, 'inside withPackedLinears');
  assert.equal(et.memory().liveTensors, live + 1, 'withPackedLinears left only its result');

  packForInference(vit);
  vit.dispose();
  assert.equal(et.memory().liveTensors, live + 1 - vit.stateDict().size, 'dispose freed the parameters and the packed copies');
});

test('packing refuses bad weights and activations with clear errors; inference-tensor weights stay unpacked', { skip }, () => {
  assert.throws(() => et.packLinearWeight(et.zeros([4])), /Expected a 2-D weight \[out, in\] for packLinearWeight but received shape \[4\]/);
  assert.throws(() => et.packLinearWeight(et.zeros([4, 4], { dtype: 'float64' })), /Expected a float32 weight for packLinearWeight but received float64/);
  assert.throws(() => et.packLinearWeight({} as et.Tensor), /Expected a Tensor for "weight" of packLinearWeight/);
  const w = et.packLinearWeight(et.zeros([4, 3]));
  assert.throws(() => et.packedLinear(et.zeros([2, 3]), w, null, 'relu' as 'gelu'), /Expected 'none' or 'gelu' for "activation" of packedLinear but received the string "relu"/);
  assert.throws(() => et.packedLinear(et.zeros([2, 5]), w, null), /Expected an input \[\.\.\., 3\] for packedLinear but received shape \[2, 5\]/);
  assert.throws(() => et.packedLinear(et.zeros([2, 3]), et.zeros([4, 3]), null), /Expected a weight from packLinearWeight for "packedWeight" of packedLinear but received another tensor of shape \[4, 3\]/);
  assert.throws(() => et.packLinearWeight(et.zeros([4, 3]), { kernel: 'mkl' as 'panels' }), /Expected one of panels, onednn for "kernel" of packLinearWeight but received the string "mkl"/);
  assert.throws(() => et.packedLinear(et.zeros([2, 3]), w, et.zeros([5])), /Expected a float32 CPU bias of shape \[4\] for packedLinear but received float32 \[5\] on cpu/);
  assert.throws(() => et.packedLinear(et.zeros([2, 3], { dtype: 'float64' }), w, null), /Expected a float32 CPU input for packedLinear but received float64 on cpu/);
  const disposed = et.zeros([2, 3]);
  disposed.dispose();
  assert.throws(() => et.packedLinear(disposed, w, null), /disposed/);
  const lin = et.inferenceMode(() => new Linear(3, 4));
  assert.equal(lin.packForInference(), false, 'an inference tensor keeps no version to watch');
});

test('the packed copy is a plain tensor even when packed with gradients on', { skip }, () => {
  const lin = new Linear(8, 4);
  assert.equal(et.isGradEnabled(), true);
  lin.packForInference();
  const packed = (lin as unknown as { packed: { packed: { weight: et.Tensor } } }).packed.packed.weight;
  assert.equal(packed.requiresGrad, false);
  assert.equal(packed.gradFn, null);
});
