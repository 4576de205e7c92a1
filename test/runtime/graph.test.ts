// Device graphs: the API's refusals on machines without them, and the
// graph-ready pieces of the training step (AdamW reading its lr from a device
// tensor, the EMA reading its momentum from one), which must compute what the
// host-number versions compute. Capture and replay themselves need a GPU:
// the CUDA part runs with EXTREMA_TEST_DEVICE=cuda (scripts/device/).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { DeviceGraph, graphsSupported } from '../../lib/runtime/graph';
import { emaUpdate } from '../../lib/extrema/ema';
import { TEST_DEVICE as device } from '../helpers/device';


test('graphs are refused on cpu with a reason, and are not claimed where this libtorch has none', () => {
  assert.equal(graphsSupported('cpu'), false);
  assert.throws(() => new DeviceGraph('cpu'), /Device graphs are for accelerators \(cuda\); on cpu run the function directly/);
  assert.throws(() => new DeviceGraph('tpu' as never), /device/i);
  if (!et.cuda.isAvailable()) {
    assert.equal(graphsSupported('cuda'), false);
    assert.throws(() => new DeviceGraph('cuda'), /graph|CUDA|cuda/);
  }
});

test('AdamW with its lr on the device takes the same steps as with a host lr (fused kernel)', () => {
  const gen = et.Generator.create(3);
  const make = () => [et.randn([5, 4], { generator: et.Generator.create(1) }).to(device).requiresGrad_(true).keep(), et.randn([4], { generator: et.Generator.create(2) }).to(device).requiresGrad_(true).keep()];
  const a = make();
  const b = make();
  const host = new et.AdamW(a, { lr: 1e-2, weightDecay: 0.05, fused: true });
  const dev = new et.AdamW(b, { lr: 1e-2, weightDecay: 0.05, fused: true });
  dev.useDeviceLr();
  for (let step = 0; step < 6; step++) {
    const grads = a.map((p) => et.randn(p.shape, { generator: gen }).to(device).keep());
    const lr = 1e-2 * (1 + Math.cos(step));
    host.setLr(lr);
    dev.setLr(lr);
    dev.writeDeviceLr();
    a.forEach((p, i) => { p.grad = grads[i]!.clone(); });
    b.forEach((p, i) => { p.grad = grads[i]!.clone(); });
    host.step();
    dev.step();
    for (const g of grads) g.dispose();
  }
  // float32 on CUDA rounds the lr itself; on CPU the kernel reads a float64 lr and matches exactly.
  const tol = device === 'cpu' ? 0 : 1e-6;
  a.forEach((p, i) => assert.ok(p.sub(b[i]!).abs().max().item() <= tol, `parameter ${i} differs`));
  host.dispose();
  dev.dispose();
  assert.throws(() => new et.AdamW(make(), { lr: 1e-2, fused: false }).useDeviceLr(), /useDeviceLr needs the fused kernel for every parameter, but this optimizer runs foreach/);
  assert.throws(() => new et.AdamW(make(), { lr: 1e-2 }).writeDeviceLr(), /call useDeviceLr\(\) first/);
});

test('the EMA with its momentum in a device tensor equals the host-number EMA', () => {
  const gen = et.Generator.create(5);
  const shapes = [[3, 4], [7], [2, 2, 2]];
  const teacherA = shapes.map((s) => et.randn(s, { generator: gen }).to(device).keep());
  const teacherB = teacherA.map((t) => t.clone().keep());
  const student = shapes.map((s) => et.randn(s, { generator: gen }).to(device).keep());
  for (const m of [0.996, 0.9, 0.5, 0]) {
    emaUpdate(teacherA, student, m);
    emaUpdate(teacherB, student, et.tensor([m], { dtype: 'float32' }).reshape([]).to(device));
    teacherA.forEach((t, i) => assert.ok(t.sub(teacherB[i]!).abs().max().item() < 1e-6, `momentum ${m}, tensor ${i}`));
  }
  assert.throws(() => emaUpdate(teacherA, student, et.zeros([2]).to(device)), /one-element momentum tensor/);
});

test('a CUDA graph replays a captured step on new inputs', { skip: !device.startsWith('cuda') || !graphsSupported(device) }, () => {
  const x = et.zeros([1024], { device }).keep();
  const w = et.ones([1024], { device }).keep();
  const graph = new DeviceGraph(device);
  graph.warmUp(() => et.scope(() => { w.mul_(x.add(1)); }));
  w.fill_(1);
  const y = graph.capture(() => x.mul(2).add(w).keep());
  for (const v of [1, 2, 5]) {
    x.fill_(v);
    graph.replay();
    assert.equal(y.sum().item(), 1024 * (2 * v + 1));
  }
  assert.throws(() => graph.capture(() => 0), /already captured/);
  y.dispose();
  graph.dispose();
  assert.throws(() => graph.replay(), /disposed/);
});
