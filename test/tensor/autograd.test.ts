// Autograd: backward options, grad accumulation, autograd.grad with
// create_graph, grad modes, compared with PyTorch.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose } from '../helpers/compare';

test('backward with a gradient, accumulation, retainGraph and second derivatives match PyTorch', () => {
  const gen = et.Generator.create(5);
  const x0 = et.randn([3, 4], { generator: gen });
  const w0 = et.randn([4, 2], { generator: gen });
  const v = et.randn([3, 2], { generator: gen });

  const x = x0.clone().requiresGrad_();
  const w = w0.clone().requiresGrad_();
  const y = x.matmul(w).tanh();
  y.backward(v, { retainGraph: true });
  y.backward(v); // accumulates
  const gx = x.grad!;
  const gw = w.grad!;

  // d/dx of sum((dL/dx)^2) through create_graph
  const x2 = x0.clone().requiresGrad_();
  const loss = x2.pow(3).mul(w0.sum()).sum();
  const [g1] = et.autograd.grad(loss, x2, { createGraph: true });
  const [g2] = et.autograd.grad(g1!.square().sum(), x2);

  const theirs = runOracle('eval_oracle.py', {
    code: `
xx = x['x0'].clone().requires_grad_()
w = x['w0'].clone().requires_grad_()
y = (xx @ w).tanh()
y.backward(x['v'], retain_graph=True)
y.backward(x['v'])
out['gx'] = xx.grad; out['gw'] = w.grad
x2 = x['x0'].clone().requires_grad_()
loss = (x2 ** 3 * x['w0'].sum()).sum()
g1, = torch.autograd.grad(loss, x2, create_graph=True)
g2, = torch.autograd.grad((g1 ** 2).sum(), x2)
out['g1'] = g1; out['g2'] = g2
`,
  }, { x0, w0, v });
  assertClose(gx, theirs.get('gx')!, 'accumulated grad x');
  assertClose(gw, theirs.get('gw')!, 'accumulated grad w');
  assertClose(g1!, theirs.get('g1')!, 'first derivative', { rtol: 1e-5 });
  assertClose(g2!, theirs.get('g2')!, 'second derivative', { rtol: 1e-5 });
});

test('autograd.backward over several outputs accumulates their weighted gradients', () => {
  const x = et.tensor([1, 2, 3], { requiresGrad: true });
  const y1 = x.square();
  const y2 = x.mul(5).sum();
  et.autograd.backward([y1, y2], [et.tensor([1, 0, 2]), null]);
  // d/dx [sum(g * x^2) + 5 sum(x)] = 2 g x + 5
  assert.deepEqual(x.grad!.toArray(), [7, 5, 17]);
});

test('backward twice without retainGraph fails with a clear error', () => {
  const x = et.ones([2]).requiresGrad_();
  const y = x.exp().sum();
  y.backward();
  assert.throws(() => y.backward(), /backward through the graph a second time/);
});

test('noGrad / enableGrad / detach control recording', () => {
  const x = et.ones([2], { requiresGrad: true });
  const a = et.noGrad(() => x.mul(2));
  assert.equal(a.requiresGrad, false);
  const b = et.noGrad(() => et.enableGrad(() => x.mul(2)));
  assert.equal(b.requiresGrad, true);
  assert.match(b.gradFn ?? '', /^MulBackward/);
  assert.equal(x.isLeaf, true);
  assert.equal(x.mul(2).detach().requiresGrad, false);
  assert.equal(et.isGradEnabled(), true);
  assert.throws(() => et.noGrad(() => { throw new Error('inner'); }), /inner/);
  assert.equal(et.isGradEnabled(), true, 'grad mode restored after a throw');
});

test('inferenceMode: no recording, the same values, restored after a throw; its tensors stay out of autograd and in-place ops afterwards', () => {
  const x = et.tensor([1, 2, 3], { requiresGrad: true });
  const a = et.inferenceMode(() => x.mul(2).add(1));
  assert.equal(a.requiresGrad, false);
  assert.deepEqual(a.toArray(), [3, 5, 7]);
  assert.equal(et.isGradEnabled(), true, 'grad mode is back');
  assert.equal(et.inferenceMode(() => et.inferenceMode(() => x.sum()).item()), 6, 'nests');
  assert.throws(() => et.inferenceMode(() => { throw new Error('inner'); }), /inner/);
  assert.equal(x.mul(2).requiresGrad, true, 'recording is back after a throw');
  assert.throws(() => et.inferenceMode(() => Promise.resolve(1)), /synchronous function/);
  // libtorch refuses to let an inference tensor into autograd or be changed in place outside the mode
  assert.throws(() => a.mul(x).sum().backward(), /[Ii]nference tensor/);
  assert.throws(() => a.add_(1), /[Ii]nference tensor/);
});

test('grad can be read, set and cleared; retainGrad keeps non-leaf grads', () => {
  const x = et.tensor([1, 2, 3], { requiresGrad: true });
  assert.equal(x.grad, null);
  const h = x.mul(2).retainGrad();
  h.sum().backward();
  assert.deepEqual(x.grad!.toArray(), [2, 2, 2]);
  assert.deepEqual(h.grad!.toArray(), [1, 1, 1]);
  x.grad = null;
  assert.equal(x.grad, null);
  x.grad = et.zeros([3]);
  assert.deepEqual(x.grad!.toArray(), [0, 0, 0]);
  assert.throws(() => { x.grad = et.zeros([4]); }, /shape/);
  assert.throws(() => et.arange(3).requiresGrad_(), /Only floating point tensors/);
  const [unused] = et.autograd.grad(x.sum(), [et.ones([1], { requiresGrad: true })], { allowUnused: true });
  assert.equal(unused, null);
});

test('autocast on CPU runs matmul in bfloat16 exactly like torch.autocast', () => {
  const gen = et.Generator.create(11);
  const a = et.randn([8, 16], { generator: gen });
  const b = et.randn([16, 4], { generator: gen });
  const [mm, sm] = et.autocast('cpu', 'bfloat16', () => {
    const m = a.matmul(b);
    return [m, m.softmax(-1)];
  });
  assert.equal(mm!.dtype, 'bfloat16');
  assert.equal(et.isAutocastEnabled('cpu'), false);
  const theirs = runOracle('eval_oracle.py', {
    code: `
with torch.autocast('cpu', dtype=torch.bfloat16):
    m = x['a'] @ x['b']
    out['mm'] = m; out['sm'] = m.softmax(-1)
`,
  }, { a, b });
  assertClose(mm!, theirs.get('mm')!, 'autocast matmul', { atol: 0, rtol: 0 });
  assertClose(sm!, theirs.get('sm')!, 'autocast softmax', { atol: 0, rtol: 0 });
});
