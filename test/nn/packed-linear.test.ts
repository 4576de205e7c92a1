// oneDNN-packed Linear layers for inference (lib/tensor/packed-linear.ts,
// Linear.packForInference, nn.packForInference): values against PyTorch's
// F.linear / F.gelu, the fallbacks (gradients on, other dtypes), staleness
// after in-place and replacing changes, the ViT encoder end to end, memory,
// and bad input.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose, assertCloseToScale } from '../helpers/compare';

const { Linear, Mlp, VisionTransformer, packForInference, unpackAll, withPackedLinears } = et.nn;
const available = et.packedLinearAvailable();
const skip = available ? false : 'this libtorch has no oneDNN';

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
});

test('Mlp runs fc1 and its GELU as one packed product', { skip }, () => {
  et.manualSeed(6);
  const mlp = new Mlp(24, 96);
  const x = et.randn([2, 7, 24]);
  const plain = et.noGrad(() => mlp.forward(x));
  packForInference(mlp);
  assertCloseToScale(et.noGrad(() => mlp.forward(x)), plain, 'packed Mlp');
});

test('a packed ViT encoder gives the unpacked features; withPackedLinears unpacks what it packed; dispose frees the copies', { skip }, async () => {
  et.manualSeed(7);
  const vit = new VisionTransformer({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 48, depth: 2, numHeads: 3, classAttentionLayers: 1 }, { seed: 2 });
  vit.eval();
  const x = et.randn([4, 1, 28, 28]);
  const plain = et.noGrad(() => vit.encode(x).instance);
  const linears = [...vit.namedModules()].filter(([, m]) => m instanceof Linear).length;

  const live = et.memory().liveTensors;
  const report = packForInference(vit);
  assert.deepEqual(report, { packed: linears, linears });
  assert.equal(et.memory().liveTensors, live + linears, 'one packed copy per Linear');
  et.scope(() => assertCloseToScale(et.inferenceMode(() => vit.encode(x).instance), plain, 'packed encoder'));
  unpackAll(vit);
  assert.equal(et.memory().liveTensors, live, 'unpackAll frees the copies');

  const inside = await withPackedLinears(vit, true, async () => {
    assert.ok([...vit.namedModules()].every(([, m]) => !(m instanceof Linear) || m.isPacked));
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
  assert.throws(() => et.packedLinear(et.zeros([2, 5]), w, null), /./, 'a width mismatch is an error, not a crash');
  const lin = et.inferenceMode(() => new Linear(3, 4));
  assert.equal(lin.packForInference(), false, 'an inference tensor keeps no version to watch');
});

test('the packed copy is a plain tensor even when packed with gradients on', { skip }, () => {
  const lin = new Linear(8, 4);
  assert.equal(et.isGradEnabled(), true);
  lin.packForInference();
  const packed = (lin as unknown as { packed: { weight: et.Tensor } }).packed.weight;
  assert.equal(packed.requiresGrad, false);
  assert.equal(packed.gradFn, null);
});
