// Lifetime: scopes free what they create, keep() and returns survive,
// dispose is final, and a long training loop runs flat in tensors and RSS.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { PerformanceObserver, constants as perfConstants, type PerformanceEntry } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as et from '../../lib';
import { native } from '../../lib/native';

test('scope frees intermediates and hands results to the enclosing scope', () => {
  const before = et.memory().liveTensors;
  const kept: et.Tensor[] = [];
  const result = et.scope(() => {
    const a = et.ones([100]);
    const b = a.mul(2).add(1);
    kept.push(et.keep(a.sum()));
    return { b, list: [b.neg()] };
  });
  assert.equal(et.memory().liveTensors, before + 3);
  assert.equal(et.scope(() => result.b.index(0).item()), 3);
  assert.equal(kept[0]!.item(), 100);
  result.b.dispose();
  result.list[0]!.dispose();
  kept[0]!.dispose();
  assert.equal(et.memory().liveTensors, before);
});

test('nested scopes move returned tensors outward, throws still free', () => {
  const before = et.memory().liveTensors;
  const outer = et.scope(() => {
    const inner = et.scope(() => et.ones([3]).mul(3));
    assert.equal(et.scopeDepth(), 1);
    return inner.add(1);
  });
  assert.deepEqual(outer.toArray(), [4, 4, 4]);
  outer.dispose();
  assert.throws(() => et.scope(() => {
    et.ones([10]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(et.memory().liveTensors, before);
  assert.throws(() => et.scope(() => Promise.resolve(1) as unknown as number), /synchronous/);
});

test('liveBytes counts each storage once, views included', () => {
  const base = et.memory().liveBytes;
  const a = et.zeros([1024]);
  const v = a.view(32, 32);
  assert.equal(et.memory().liveBytes - base, 4096);
  a.dispose();
  assert.equal(et.memory().liveBytes - base, 4096, 'the view keeps the storage alive');
  v.dispose();
  assert.equal(et.memory().liveBytes, base);
});

test('use after dispose throws a clear error; dispose is idempotent', () => {
  const a = et.ones([2]);
  a.dispose();
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.add(1), /disposed/);
  assert.throws(() => a.shape, /disposed/);
  assert.throws(() => et.cat([et.ones([1]), a]), /disposed/);
  {
    using b = et.ones([2]);
    assert.equal(b.sum().item(), 2);
  }
});

test('10,000 forward+backward steps in scopes keep live tensors and RSS flat', () => {
  const gen = et.Generator.create(0);
  const w1 = et.randn([32, 64], { generator: gen }).mul(0.1).requiresGrad_();
  const w2 = et.randn([64, 10], { generator: gen }).mul(0.1).requiresGrad_();
  const x = et.randn([16, 32], { generator: gen });
  const y = et.randint(0, 10, [16], { generator: gen });
  const params = [w1, w2];
  let tensorsAt1000 = 0;
  let rssAt2000 = 0;
  let firstLoss = 0;
  let lastLoss = 0;
  for (let i = 0; i < 10000; i++) {
    et.scope(() => {
      const loss = et.crossEntropy(x.matmul(w1).relu().matmul(w2), y);
      loss.backward();
      et.noGrad(() => {
        for (const p of params) {
          p.sub_(p.grad!, 0.05);
          p.grad = null;
        }
      });
      if (i === 0) firstLoss = loss.item();
      if (i === 9999) lastLoss = loss.item();
    });
    if (i === 1000) tensorsAt1000 = et.memory().liveTensors;
    if (i === 2000) rssAt2000 = process.memoryUsage().rss;
  }
  const growth = process.memoryUsage().rss - rssAt2000;
  assert.equal(et.memory().liveTensors, tensorsAt1000, 'live tensors after 10,000 steps');
  assert.ok(growth < 16 * 1024 * 1024, `RSS grew ${(growth / 1048576).toFixed(1)} MiB over 8,000 steps`);
  assert.ok(lastLoss < firstLoss * 0.5, `the MLP learned (loss ${firstLoss.toFixed(3)} -> ${lastLoss.toFixed(3)})`);
});

test('native bytes are reported to V8 and returned on dispose', () => {
  const start = native.v8ExternalMemory();
  const big = et.zeros([4 * 1024 * 1024]);
  assert.equal(native.v8ExternalMemory() - start, 16 * 1024 * 1024);
  big.dispose();
  assert.equal(native.v8ExternalMemory(), start);
});

test('only host memory is reported to V8: a meta tensor of the same size adds nothing', () => {
  const start = native.v8ExternalMemory();
  const meta = et.zeros([4 * 1024 * 1024], { device: 'meta' });
  assert.equal(meta.device, 'meta');
  assert.equal(native.v8ExternalMemory(), start, 'device storage is not V8\'s to collect');
  meta.dispose();
  assert.equal(native.v8ExternalMemory(), start);
});

const hasCuda = et.cuda.isAvailable();

/** Full (mark-compact) collections while `work` runs, counted from the 'gc' performance entries. */
async function majorCollections(work: () => void): Promise<number> {
  let majors = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) if (e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) majors++;
  });
  observer.observe({ entryTypes: ['gc'] });
  work();
  await new Promise((r) => setTimeout(r, 50)); // entries arrive asynchronously
  observer.disconnect();
  return majors;
}

/** 100 iterations each holding 1 GiB of fresh (uninitialised, so untouched on the host) tensors. */
function largeTensorLoop(device: 'cpu' | 'cuda'): void {
  for (let i = 0; i < 100; i++) {
    et.scope(() => {
      for (let j = 0; j < 4; j++) et.empty([64 * 1024 * 1024], { device });
    });
  }
}

test('host tensors stay reported: the same loop over CPU tensors makes V8 collect (so the CUDA count below can fail)', async () => {
  const majors = await majorCollections(() => largeTensorLoop('cpu'));
  assert.ok(majors >= 4, `only ${majors} full collections over 100 iterations of 1 GiB of host tensors`);
});

test('CUDA: device tensors are not reported to V8, so a loop over large ones runs without full collections', { skip: hasCuda ? false : 'no CUDA device on this machine' }, async () => {
  const start = native.v8ExternalMemory();
  const probe = et.empty([64 * 1024 * 1024], { device: 'cuda' });
  assert.equal(native.v8ExternalMemory(), start, 'a 256 MiB CUDA tensor adds no external memory');
  probe.dispose();
  // Reported as external memory, the same loop made V8 run full collections
  // (the CPU test above counts them); device bytes must not.
  const majors = await majorCollections(() => largeTensorLoop('cuda'));
  assert.ok(majors <= 2, `${majors} full collections over 100 iterations of 1 GiB of CUDA tensors`);
  // pinned host memory is host memory: still reported
  const pinned = et.aten.pin_memory(et.zeros([1024 * 1024]));
  assert.equal(native.v8ExternalMemory() - start >= 4 * 1024 * 1024, true, 'pinned host bytes are reported');
  pinned.dispose();
});

test('the finalizer backstop frees tensors dropped outside any scope once GC runs', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  // registrations happen on the next turn, finalizers after a GC and another turn
  const settle = async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await settle(); // earlier tests' garbage goes first
  const before = et.memory().liveTensors;
  (() => {
    for (let i = 0; i < 50; i++) et.ones([8]).mul(2);
  })();
  assert.equal(et.memory().liveTensors, before + 100);
  await settle();
  assert.equal(et.memory().liveTensors, before);
});
