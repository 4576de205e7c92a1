// Forward values and gradients of every op family, against PyTorch in Python
// on identical inputs. Gradients are of sum(out_i * w_i) with random w_i.
// Both sides run on EXTREMA_TEST_DEVICE (cpu by default); inputs are drawn on
// the CPU and moved there, so the numbers do not depend on the device.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import type { Tensor } from '../../lib';
import { runOracle } from '../helpers/oracle';
import { assertClose, type Tolerance } from '../helpers/compare';
import { TEST_DEVICE, onTestDevice, skipUnlessDeviceAvailable } from '../helpers/device';

type Kind = 'normal' | 'positive' | 'unit' | 'bool' | `int:${number}` | 'distinct';
interface Case {
  name: string;
  inputs: Record<string, [number[], Kind?]>;
  /** Constants made here take an input's device (x.device, device=a.device) so the case also runs on CUDA. */
  ts: (x: Record<string, Tensor>) => Tensor | Tensor[];
  py: string;
  grad?: boolean;
  tol?: Tolerance;
  /** outputs compared exactly (indices) */
  exact?: boolean;
}

const g = et.Generator.create(1234);

function make([shape, kind = 'normal']: [number[], Kind?]): Tensor {
  if (kind === 'normal') return et.randn(shape, { generator: g });
  if (kind === 'positive') return et.rand(shape, { generator: g }).add(0.5);
  if (kind === 'unit') return et.rand(shape, { generator: g }).mul(1.8).sub(0.9);
  if (kind === 'bool') return et.rand(shape, { generator: g }).gt(0.5);
  if (kind === 'distinct') {
    const n = shape.reduce((a, b) => a * b, 1);
    return et.randperm(n, { generator: g }).to('float32').div(n).reshape(shape);
  }
  const high = Number(kind.slice(4));
  return et.randint(0, high, shape, { generator: g });
}

const cases: Case[] = [
  // elementwise binary with broadcasting
  { name: 'add_bcast', inputs: { a: [[2, 3, 4]], b: [[3, 1]] }, ts: ({ a, b }) => a!.add(b!, 2), py: 'torch.add(a, b, alpha=2)', grad: true },
  { name: 'sub', inputs: { a: [[4, 5]], b: [[5]] }, ts: ({ a, b }) => a!.sub(b!), py: 'a - b', grad: true },
  { name: 'mul', inputs: { a: [[3, 1, 5]], b: [[4, 1]] }, ts: ({ a, b }) => a!.mul(b!), py: 'a * b', grad: true },
  { name: 'div', inputs: { a: [[3, 4]], b: [[3, 4], 'positive'] }, ts: ({ a, b }) => a!.div(b!), py: 'a / b', grad: true },
  { name: 'pow', inputs: { a: [[3, 4], 'positive'], b: [[4]] }, ts: ({ a, b }) => a!.pow(b!), py: 'torch.pow(a, b)', grad: true },
  { name: 'maximum', inputs: { a: [[6]], b: [[6]] }, ts: ({ a, b }) => a!.maximum(b!), py: 'torch.maximum(a, b)', grad: true },
  { name: 'where', inputs: { c: [[3, 4], 'bool'], a: [[3, 4]], b: [[4]] }, ts: ({ c, a, b }) => et.where(c!, a!, b!), py: 'torch.where(c, a, b)', grad: true },
  { name: 'lerp', inputs: { a: [[5]], b: [[5]], w: [[5], 'unit'] }, ts: ({ a, b, w }) => a!.lerp(b!, w!), py: 'torch.lerp(a, b, w)', grad: true },
  { name: 'addcmul', inputs: { a: [[5]], b: [[5]], c: [[5]] }, ts: ({ a, b, c }) => a!.addcmul(b!, c!, 0.5), py: 'torch.addcmul(a, b, c, value=0.5)', grad: true },
  { name: 'compare', inputs: { a: [[8]], b: [[8]] }, ts: ({ a, b }) => [a!.lt(b!), a!.ge(0), a!.eq(a!)], py: '(a < b, a >= 0, a == a)' },
  // with scalars
  { name: 'scalar_ops', inputs: { a: [[3, 4]] }, ts: ({ a }) => a!.mul(3).add(0.5).sub(2).div(4), py: '(a * 3 + 0.5 - 2) / 4', grad: true },
  { name: 'pow_scalar', inputs: { a: [[7], 'positive'] }, ts: ({ a }) => a!.pow(1.5), py: 'a ** 1.5', grad: true },
  { name: 'clamp', inputs: { a: [[10]] }, ts: ({ a }) => a!.clamp(-0.5, 0.5), py: 'a.clamp(-0.5, 0.5)', grad: true },
  { name: 'int_scalar_keeps_int', inputs: { a: [[6], 'int:10'] }, ts: ({ a }) => a!.add(3).mul(2), py: '(a + 3) * 2' },
  // unary
  { name: 'exp', inputs: { a: [[9]] }, ts: ({ a }) => a!.exp(), py: 'a.exp()', grad: true },
  { name: 'log', inputs: { a: [[9], 'positive'] }, ts: ({ a }) => a!.log(), py: 'a.log()', grad: true },
  { name: 'sqrt_rsqrt', inputs: { a: [[9], 'positive'] }, ts: ({ a }) => [a!.sqrt(), a!.rsqrt()], py: '(a.sqrt(), a.rsqrt())', grad: true },
  { name: 'tanh_sigmoid', inputs: { a: [[9]] }, ts: ({ a }) => [a!.tanh(), a!.sigmoid()], py: '(a.tanh(), a.sigmoid())', grad: true },
  { name: 'gelu', inputs: { a: [[4, 8]] }, ts: ({ a }) => [et.gelu(a!), et.gelu(a!, 'tanh')], py: "(F.gelu(a), F.gelu(a, approximate='tanh'))", grad: true },
  { name: 'relu_abs_neg', inputs: { a: [[9]] }, ts: ({ a }) => [a!.relu(), a!.abs(), a!.neg()], py: '(a.relu(), a.abs(), -a)', grad: true },
  { name: 'trig_erf', inputs: { a: [[9]] }, ts: ({ a }) => [a!.sin(), a!.cos(), a!.erf()], py: '(a.sin(), a.cos(), torch.erf(a))', grad: true },
  // reductions
  { name: 'sum_all', inputs: { a: [[3, 4, 5]] }, ts: ({ a }) => a!.sum(), py: 'a.sum()', grad: true },
  { name: 'sum_dims', inputs: { a: [[3, 4, 5]] }, ts: ({ a }) => a!.sum([0, 2], true), py: 'a.sum(dim=(0, 2), keepdim=True)', grad: true },
  { name: 'mean_dim', inputs: { a: [[3, 4, 5]] }, ts: ({ a }) => a!.mean(-1), py: 'a.mean(-1)', grad: true },
  { name: 'amax_amin', inputs: { a: [[4, 6], 'distinct'] }, ts: ({ a }) => [a!.amax(1), a!.amin(0, true)], py: '(a.amax(1), a.amin(0, keepdim=True))', grad: true },
  { name: 'max_dim', inputs: { a: [[4, 6], 'distinct'] }, ts: ({ a }) => { const r = a!.maxDim(1); return [r.values, r.indices]; }, py: 'tuple(a.max(dim=1))', grad: true },
  { name: 'logsumexp', inputs: { a: [[4, 6]] }, ts: ({ a }) => a!.logsumexp(1), py: 'a.logsumexp(1)', grad: true },
  { name: 'std_var', inputs: { a: [[5, 6]] }, ts: ({ a }) => [a!.std(1), a!.var(0, true, 0), a!.std()], py: '(a.std(1), a.var(0, keepdim=True, correction=0), a.std())', grad: true },
  { name: 'norm', inputs: { a: [[5, 6]] }, ts: ({ a }) => [a!.norm(), a!.norm(1, 1)], py: '(a.norm(), a.norm(p=1, dim=1))', grad: true },
  { name: 'softmax', inputs: { a: [[3, 7]] }, ts: ({ a }) => [a!.softmax(-1), a!.logSoftmax(0)], py: '(a.softmax(-1), a.log_softmax(0))', grad: true },
  { name: 'cumsum_prod', inputs: { a: [[3, 4], 'positive'] }, ts: ({ a }) => [a!.cumsum(1), a!.prod(0)], py: '(a.cumsum(1), a.prod(0))', grad: true },
  { name: 'argmax_all_any', inputs: { a: [[4, 5], 'distinct'] }, ts: ({ a }) => [a!.argmax(1), a!.gt(0.5).all(1), a!.gt(0.9).any()], py: '(a.argmax(1), (a > 0.5).all(1), (a > 0.9).any())' },
  // linear algebra
  { name: 'matmul_batched', inputs: { a: [[2, 3, 4, 5]], b: [[5, 6]] }, ts: ({ a, b }) => a!.matmul(b!), py: 'a @ b', grad: true, tol: { atol: 1e-5, rtol: 1e-5 } },
  { name: 'matmul_bcast', inputs: { a: [[2, 1, 4, 5]], b: [[3, 5, 2]] }, ts: ({ a, b }) => et.matmul(a!, b!), py: 'torch.matmul(a, b)', grad: true, tol: { rtol: 1e-5 } },
  { name: 'mm_bmm', inputs: { a: [[3, 4]], b: [[4, 2]], c: [[2, 3, 4]], d: [[2, 4, 5]] }, ts: ({ a, b, c, d }) => [a!.mm(b!), c!.bmm(d!)], py: '(a.mm(b), c.bmm(d))', grad: true, tol: { rtol: 1e-5 } },
  { name: 'linear', inputs: { x: [[2, 5, 8]], w: [[6, 8]], b: [[6]] }, ts: ({ x, w, b }) => et.linear(x!, w!, b!), py: 'F.linear(x, w, b)', grad: true, tol: { rtol: 1e-5 } },
  { name: 'linear_nobias', inputs: { x: [[4, 8]], w: [[3, 8]] }, ts: ({ x, w }) => et.linear(x!, w!), py: 'F.linear(x, w)', grad: true, tol: { rtol: 1e-5 } },
  { name: 'einsum', inputs: { a: [[2, 3, 4]], b: [[2, 4, 5]] }, ts: ({ a, b }) => et.einsum('bij,bjk->bik', a!, b!), py: "torch.einsum('bij,bjk->bik', a, b)", grad: true, tol: { rtol: 1e-5 } },
  { name: 'einsum_trace', inputs: { a: [[4, 4]] }, ts: ({ a }) => et.einsum('ii', a!), py: "torch.einsum('ii', a)", grad: true },
  // convolution and normalisation
  { name: 'conv2d', inputs: { x: [[2, 3, 9, 9]], w: [[4, 3, 3, 3]], b: [[4]] }, ts: ({ x, w, b }) => et.conv2d(x!, w!, b!, { stride: 2, padding: 1 }), py: 'F.conv2d(x, w, b, stride=2, padding=1)', grad: true, tol: { atol: 2e-5, rtol: 1e-5 } },
  { name: 'conv2d_patch', inputs: { x: [[2, 1, 8, 8]], w: [[6, 1, 4, 4]], b: [[6]] }, ts: ({ x, w, b }) => et.conv2d(x!, w!, b!, { stride: 4 }), py: 'F.conv2d(x, w, b, stride=4)', grad: true, tol: { atol: 2e-5 } },
  { name: 'conv2d_groups', inputs: { x: [[1, 4, 6, 6]], w: [[4, 2, 3, 3]] }, ts: ({ x, w }) => et.conv2d(x!, w!, null, { groups: 2, padding: [1, 0], dilation: 1 }), py: 'F.conv2d(x, w, None, groups=2, padding=(1, 0))', grad: true, tol: { atol: 2e-5 } },
  { name: 'layer_norm', inputs: { x: [[2, 3, 8]], w: [[8]], b: [[8]] }, ts: ({ x, w, b }) => et.layerNorm(x!, [8], w!, b!, 1e-6), py: 'F.layer_norm(x, (8,), w, b, eps=1e-6)', grad: true, tol: { atol: 2e-5, rtol: 1e-5 } },
  { name: 'sdpa', inputs: { q: [[2, 3, 5, 8]], k: [[2, 3, 7, 8]], v: [[2, 3, 7, 4]] }, ts: ({ q, k, v }) => et.scaledDotProductAttention(q!, k!, v!), py: 'F.scaled_dot_product_attention(q, k, v)', grad: true, tol: { atol: 2e-5, rtol: 1e-5 } },
  { name: 'sdpa_mask_scale', inputs: { q: [[2, 4, 8]], k: [[2, 6, 8]], v: [[2, 6, 8]], m: [[4, 6], 'bool'] }, ts: ({ q, k, v, m }) => et.scaledDotProductAttention(q!, k!, v!, { attnMask: m!.logicalOr(et.eye(4, 6, { dtype: 'bool', device: m!.device })), scale: 0.3 }), py: 'F.scaled_dot_product_attention(q, k, v, attn_mask=m | torch.eye(4, 6, dtype=torch.bool, device=m.device), scale=0.3)', grad: true, tol: { atol: 2e-5, rtol: 1e-5 } },
  { name: 'normalize', inputs: { x: [[4, 6]] }, ts: ({ x }) => [et.normalize(x!, 2, 1), et.normalize(x!, 2, 0)], py: '(F.normalize(x, dim=1), F.normalize(x, dim=0))', grad: true },
  { name: 'cross_entropy', inputs: { x: [[6, 5]], y: [[6], 'int:5'] }, ts: ({ x, y }) => et.crossEntropy(x!, y!), py: 'F.cross_entropy(x, y)', grad: true },
  { name: 'cross_entropy_smooth', inputs: { x: [[6, 5]], y: [[6], 'int:5'] }, ts: ({ x, y }) => et.crossEntropy(x!, y!, { labelSmoothing: 0.1, reduction: 'sum' }), py: "F.cross_entropy(x, y, label_smoothing=0.1, reduction='sum')", grad: true, tol: { atol: 2e-5 } },
  { name: 'mse_cosine', inputs: { a: [[4, 6]], b: [[4, 6]] }, ts: ({ a, b }) => [et.mseLoss(a!, b!), et.cosineSimilarity(a!, b!)], py: '(F.mse_loss(a, b), F.cosine_similarity(a, b))', grad: true },
  { name: 'dropout_eval_p0', inputs: { a: [[5]] }, ts: ({ a }) => [et.dropout(a!, 0.5, false), et.dropout(a!, 0, true)], py: '(F.dropout(a, 0.5, training=False), F.dropout(a, 0.0, training=True))', grad: true },
  // views and shape
  { name: 'reshape_permute', inputs: { a: [[2, 3, 4]] }, ts: ({ a }) => a!.reshape(4, 6).t().reshape([3, 2, 4]).permute(2, 0, 1), py: 'a.reshape(4, 6).t().reshape(3, 2, 4).permute(2, 0, 1)', grad: true },
  { name: 'transpose_expand', inputs: { a: [[3, 1]] }, ts: ({ a }) => a!.transpose(0, 1).expand(4, 3), py: 'a.transpose(0, 1).expand(4, 3)', grad: true },
  { name: 'squeeze_flatten', inputs: { a: [[2, 1, 3, 1]] }, ts: ({ a }) => [a!.squeeze(), a!.squeeze(1), a!.flatten(), a!.unsqueeze(0).flatten(1, 2)], py: '(a.squeeze(), a.squeeze(1), a.flatten(), a.unsqueeze(0).flatten(1, 2))', grad: true },
  { name: 'narrow_select_slice', inputs: { a: [[5, 6]] }, ts: ({ a }) => [a!.narrow(1, 2, 3), a!.select(0, -1), a!.slice(1, 1, null, 2)], py: '(a.narrow(1, 2, 3), a[-1], a[:, 1::2])', grad: true },
  { name: 'index_basic', inputs: { a: [[4, 5, 6]] }, ts: ({ a }) => [a!.index(1, et.slice(1, 4), null), a!.index('...', 2), a!.index(et.slice(null, null, 2), -1)], py: '(a[1, 1:4, None], a[..., 2], a[::2, -1])', grad: true },
  { name: 'index_tensor', inputs: { a: [[5, 6]], i: [[3], 'int:5'], j: [[3], 'int:6'] }, ts: ({ a, i, j }) => [a!.index(i!), a!.index(i!, j!), a!.index(et.slice(), j!)], py: '(a[i], a[i, j], a[:, j])', grad: true },
  { name: 'index_mask', inputs: { a: [[4, 5]], m: [[4, 5], 'bool'] }, ts: ({ a, m }) => [a!.maskedSelect(m!), a!.maskedFill(m!, -1)], py: '(a.masked_select(m), a.masked_fill(m, -1))', grad: true },
  { name: 'cat_stack', inputs: { a: [[2, 3]], b: [[4, 3]] }, ts: ({ a, b }) => [et.cat([a!, b!]), et.stack([a!, a!.mul(2)], 1)], py: '(torch.cat([a, b]), torch.stack([a, a * 2], 1))', grad: true },
  { name: 'chunk_split', inputs: { a: [[7, 2]] }, ts: ({ a }) => [...a!.chunk(3), ...a!.split([2, 5]), ...a!.split(4)], py: '(*a.chunk(3), *a.split([2, 5]), *a.split(4))', grad: true },
  { name: 'repeat_flip_roll', inputs: { a: [[2, 3]] }, ts: ({ a }) => [a!.repeat(2, 1), a!.flip(1), a!.roll(1, 0)], py: '(a.repeat(2, 1), a.flip(1), a.roll(1, 0))', grad: true },
  // gather / scatter
  { name: 'gather', inputs: { a: [[4, 5]], i: [[4, 3], 'int:5'] }, ts: ({ a, i }) => a!.gather(1, i!), py: 'a.gather(1, i)', grad: true },
  { name: 'index_select', inputs: { a: [[4, 5]], i: [[6], 'int:4'] }, ts: ({ a, i }) => a!.indexSelect(0, i!), py: 'a.index_select(0, i)', grad: true },
  { name: 'scatter', inputs: { a: [[3, 5]], s: [[3, 2]] }, ts: ({ a, s }) => a!.scatter(1, et.tensor([[0, 4], [1, 3], [2, 0]], { dtype: 'int64', device: a!.device }), s!), py: 'a.scatter(1, torch.tensor([[0, 4], [1, 3], [2, 0]], device=a.device), s)', grad: true },
  { name: 'scatter_add', inputs: { a: [[3, 5]], s: [[3, 4]], i: [[3, 4], 'int:5'] }, ts: ({ a, s, i }) => a!.scatterAdd(1, i!, s!), py: 'a.scatter_add(1, i, s)', grad: true },
  { name: 'index_put', inputs: { a: [[5, 3]], v: [[2, 3]] }, ts: ({ a, v }) => a!.indexPut([et.tensor([4, 1], { dtype: 'int64', device: a!.device })], v!), py: 'a.index_put((torch.tensor([4, 1], device=a.device),), v)', grad: true },
  // ordering
  { name: 'sort_argsort', inputs: { a: [[3, 6], 'distinct'] }, ts: ({ a }) => { const s = a!.sort(1, true); return [s.values, s.indices, a!.argsort(0)]; }, py: '(*a.sort(1, descending=True), a.argsort(0))', grad: true, exact: true },
  { name: 'topk', inputs: { a: [[3, 8], 'distinct'] }, ts: ({ a }) => { const s = a!.topk(3); return [s.values, s.indices]; }, py: 'tuple(a.topk(3))', grad: true, exact: true },
];

test(onTestDevice('every op family matches PyTorch in values and gradients'), { skip: skipUnlessDeviceAvailable }, () => {
  const inputs = new Map<string, Tensor>();
  const spec: { device: string; cases: unknown[] } = { device: TEST_DEVICE, cases: [] };
  const ours = new Map<string, { outs: Tensor[]; grads: Map<string, Tensor> }>();
  for (const c of cases) {
    const xs: Record<string, Tensor> = {};
    for (const [n, s] of Object.entries(c.inputs)) {
      const x = make(s);
      inputs.set(`${c.name}/${n}`, x);
      const leaf = x.to(TEST_DEVICE).detach();
      if (c.grad && et.isFloating(leaf.dtype)) leaf.requiresGrad_(true);
      xs[n] = leaf;
    }
    const y = c.ts(xs);
    const outs = Array.isArray(y) ? y : [y];
    const grads = new Map<string, Tensor>();
    if (c.grad) {
      let loss: Tensor | null = null;
      outs.forEach((o, i) => {
        if (!et.isFloating(o.dtype)) return;
        const w = et.randn(o.shape, { generator: g });
        inputs.set(`${c.name}/w${i}`, w);
        const term = o.mul(w.to(TEST_DEVICE)).sum();
        loss = loss === null ? term : loss.add(term);
      });
      (loss as Tensor | null)?.backward();
      for (const [n, x] of Object.entries(xs)) {
        const gr = x.grad;
        if (gr !== null) grads.set(n, gr);
      }
    }
    ours.set(c.name, { outs, grads });
    spec.cases.push({ name: c.name, inputs: Object.keys(c.inputs), py: c.py, grad: !!c.grad });
  }
  const theirs = runOracle('ops_oracle.py', spec, inputs);
  for (const c of cases) {
    const { outs, grads } = ours.get(c.name)!;
    outs.forEach((o, i) => {
      const ref = theirs.get(`${c.name}/out${i}`);
      assert.ok(ref, `${c.name}: PyTorch produced no output ${i}`);
      assertClose(o.cpu(), ref!, `${c.name} output ${i}`, c.exact ? { atol: 0, rtol: 0 } : c.tol);
    });
    assert.ok(!theirs.has(`${c.name}/out${outs.length}`), `${c.name}: PyTorch returned more outputs than we did`);
    for (const n of Object.keys(c.inputs)) {
      const ref = theirs.get(`${c.name}/grad/${n}`);
      const mine = grads.get(n);
      assert.equal(mine !== undefined, ref !== undefined, `${c.name}: gradient presence for ${n}`);
      if (mine && ref) assertClose(mine.cpu(), ref, `${c.name} grad ${n}`, c.tol);
    }
  }
});
