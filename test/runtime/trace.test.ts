// Operator traces (et.Trace): a replay must compute exactly what the traced
// function computes on the same inputs (the oracle is the function itself,
// run eagerly), for every kind of argument the addon passes (tensors,
// optional tensors, tensor lists with and without holes, scalars, int
// lists), results that are lists, in-place ops and views; it must refuse
// what it cannot follow, and leave nothing behind when recording fails.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { Trace } from '../../lib/runtime/trace';
import { slice } from '../../lib/tensor/indexing';
import { gelu, layerNorm, linear, cat } from '../../lib/tensor/functional';
import { ExtremaModel } from '../../lib/extrema';
import { TEST_DEVICE as device, skipUnlessDeviceAvailable } from '../helpers/device';

const gen = (seed: number) => et.Generator.create(seed);

function values(t: et.Tensor): Float32Array {
  return t.toTypedArray<'float32'>();
}

test('a replay computes what the function computes, for every kind of argument and result', () => {
  et.scope(() => {
    const w = et.randn([6, 4], { generator: gen(1) });
    const b = et.randn([6], { generator: gen(2) });
    const idx = et.tensor([2, 0, 1], { dtype: 'int64' });
    // Views, an optional bias, an int list (layerNorm), a tensor list in (cat) and out (unbind),
    // an optional-tensor list with a hole (x.index(slice(), idx)), an in-place op, scalars,
    // and a constant made inside the function.
    const fn = (x: et.Tensor, y: et.Tensor): et.Tensor[] => {
      const h = gelu(linear(x, w, b));
      const n = layerNorm(h, [6]);
      const [first, second] = n.reshape([2, 3, 6]).unbind(0);
      const joined = cat([first!, second!.mul(2), y], 0);
      joined.add_(0.5);
      const picked = joined.index(slice(), idx);
      const bias = et.tensor([1, 2, 3]);
      return [picked.add(bias).transpose(0, 1).contiguous(), n.sum()];
    };
    const x0 = et.randn([6, 4], { generator: gen(3) });
    const y0 = et.randn([1, 6], { generator: gen(4) });
    const { trace, result } = Trace.record([x0, y0], fn);
    assert.ok(trace.steps > 10, `${trace.steps} operators recorded`);
    const eager0 = fn(x0, y0);
    result.forEach((r, i) => assert.deepEqual(values(r), values(eager0[i]!), `recording's own output ${i}`));

    for (let seed = 10; seed < 13; seed++) {
      const x = et.randn([6, 4], { generator: gen(seed) });
      const y = et.randn([1, 6], { generator: gen(seed + 100) });
      const replayed = trace.run([x, y]);
      const eager = fn(x, y);
      assert.equal(replayed.length, 2);
      replayed.forEach((r, i) => {
        assert.deepEqual(r.shape, eager[i]!.shape);
        assert.deepEqual(values(r), values(eager[i]!), `output ${i} for inputs of seed ${seed}`);
      });
    }

    // Weights are held by reference: an in-place change is seen, a replacement is not.
    const x = et.randn([6, 4], { generator: gen(20) });
    const y = et.randn([1, 6], { generator: gen(21) });
    w.mul_(3);
    assert.deepEqual(values(trace.run([x, y])[0]!), values(fn(x, y)[0]!), 'a weight scaled in place');
    trace.dispose();
    assert.equal(trace.isDisposed, true);
    assert.throws(() => trace.run([x, y]), /This trace has been disposed/);
  });
});

// On EXTREMA_TEST_DEVICE (scripts/device/cuda-check.sh runs it on a GPU): a replay issues the same operators there.
test('the encoder forward pass replays to the same features at each recorded batch size, and memory stays flat', { skip: skipUnlessDeviceAvailable }, () => {
  const model = new ExtremaModel({
    encoder: { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 32, depth: 2, numHeads: 2, classAttentionLayers: 1 },
    projectorHiddenDim: 8, projectorDim: 8, predictorHiddenDim: 8, maskRatio: 0.5,
  }, { seed: 5 }).to(device);
  const encoder = model.momentum_encoder;
  et.nn.packForInference(encoder);
  try {
    const forward = (x: et.Tensor) => encoder.encode(x).instance;
    const traces = et.inferenceMode(() => [1, 3].map((n) => et.scope(() => Trace.record([et.randn([n, 3, 16, 16], { generator: gen(n) }).to(device)], forward).trace)));
    for (const [k, n] of [1, 3].entries()) {
      et.inferenceMode(() => et.scope(() => {
        const x = et.randn([n, 3, 16, 16], { generator: gen(50 + n) }).to(device);
        assert.deepEqual(values(traces[k]!.run([x])[0]!), values(forward(x)), `batch ${n}`);
      }));
    }
    const before = et.memory().liveTensors;
    for (let i = 0; i < 50; i++) {
      et.inferenceMode(() => et.scope(() => {
        traces[0]!.run([et.randn([1, 3, 16, 16]).to(device)]);
      }));
    }
    assert.equal(et.memory().liveTensors, before, 'replays inside scopes leave no tensor behind');
    for (const t of traces) t.dispose();
  } finally {
    model.dispose();
  }
});

test('a recording gives back the memory of the intermediates that die while it runs, and still tells tensors apart', () => {
  // 40 steps of two operators on an 8 MB tensor, each intermediate freed
  // once the next exists: an eager pass holds two or three at a time, and so
  // must a recording (it once held all 80, 640 MB, until its end). A later
  // tensor then lands where an earlier, freed one was, which the trace must
  // not mistake for it.
  const steps = 40;
  const chain = (x: et.Tensor): et.Tensor => {
    let y = x;
    for (let i = 0; i < steps; i++) {
      const scaled = y.mul(1 + i / 1000);
      const next = scaled.add(i);
      scaled.dispose();
      if (y !== x) y.dispose();
      y = next;
    }
    return y;
  };
  et.scope(() => {
    const x = et.randn([2_000_000], { generator: gen(7) });
    chain(x).dispose();
    const before = process.memoryUsage().rss;
    let during = 0;
    const { trace, result } = Trace.record([x], (a) => {
      const y = chain(a);
      during = process.memoryUsage().rss;
      return y;
    });
    const grown = (during - before) / 2 ** 20;
    assert.ok(grown < 100, `the recording held ${grown.toFixed(0)} MB more than an eager pass needs`);
    const z = et.randn([2_000_000], { generator: gen(8) });
    assert.deepEqual(values(trace.run([z])[0]!), values(chain(z)));
    assert.deepEqual(values(result), values(chain(x)));
    trace.dispose();
  });
});

test('replays check their inputs, and a recording that fails leaves nothing recording', () => {
  et.scope(() => {
    const x = et.randn([2, 3], { generator: gen(1) });
    const { trace } = Trace.record([x], (a) => a.mul(2).sum(1));
    assert.throws(() => trace.run([]), /Expected 1 input tensors for the trace but received 0/);
    assert.throws(() => trace.run([et.randn([3, 3])]), (e) => e instanceof RangeError && /Expected shape \[2, 3\] for input 0 of the trace \(the shape it was recorded with\) but received \[3, 3\]/.test(e.message));
    assert.throws(() => trace.run([et.zeros([2, 3], { dtype: 'float64' })]), (e) => e instanceof TypeError && /Expected a Float tensor on cpu for input 0 of the trace but received Double on cpu/.test(e.message));
    assert.throws(() => trace.run([x.float() as unknown as et.Tensor, 3 as unknown as et.Tensor]), /Expected a Tensor for the inputs of Trace.run\[1\] but received/);
    // An input array whose getter disposes the trace while the call reads it: an error, not a crash.
    const sly = Trace.record([x], (a) => a.add(1)).trace;
    const tricky: et.Tensor[] = [];
    Object.defineProperty(tricky, 0, { get: () => { sly.dispose(); return x; }, enumerable: true });
    Object.defineProperty(tricky, 'length', { value: 1 });
    assert.throws(() => sly.run(tricky), /unknown or disposed trace id/);
    const gone = et.randn([2, 3]);
    gone.dispose();
    assert.throws(() => trace.run([gone]), /the inputs of Trace.run\[0\] has been disposed/);

    // Reading a computed value in JavaScript: the replay could not follow it.
    assert.throws(() => Trace.record([x], (a) => (a.sum().item() as number) > 0 ? a.mul(2) : a.mul(3)),
      (e) => e instanceof et.TraceRefusedError && /The traced function read the values of a tensor it computed \(item\)/.test(e.message));
    // Work outside the dispatcher's operators is not recorded, so a recording that does any is refused.
    const p = et.randn([2], { generator: gen(2) }).requiresGrad_(true);
    assert.throws(() => Trace.record([x], (a) => {
      const loss = a.sum(1).mul(p).sum();
      loss.backward();
      return loss;
    }), /The traced function called backward, which a trace does not record, so a replay would skip it/);
    p.dispose();
    assert.throws(() => Trace.record([x], (a) => et.autocast('cpu', 'bfloat16', () => a.mul(2))), /The traced function called autocast, which a trace does not record/);
    // An operator that failed (the function caught it and went on), or one that answers a value JS could act on.
    assert.throws(() => Trace.record([x], (a) => {
      try {
        a.matmul(a);
      } catch {
        return a.mul(2);
      }
      return a;
    }), /The traced function called an operator that failed \(aten::matmul\)/);
    assert.throws(() => Trace.record([x], (a) => (et.aten.equal(a, a.mul(1)) ? a.add(1) : a.add(2))),
      /The traced function called an operator that answers a value, aten::equal, which JavaScript could act on/);
    // Shape queries are fine: a trace is for one set of shapes.
    const sized = Trace.record([x], (a) => a.mul(et.aten.size_int(a, 1)));
    assert.deepEqual(values(sized.trace.run([x])[0]!), values(x.mul(3)));
    sized.trace.dispose();
    // Autocast picks the kernels below the recorded operators: a replay runs under its recording's.
    const plain = Trace.record([x], (a) => a.mul(2)).trace;
    assert.throws(() => et.autocast('cpu', 'bfloat16', () => plain.run([x])), /The trace was recorded with autocast off and is replayed with autocast cpu BFloat16; replay it under the autocast of its recording/);
    plain.dispose();
    // A function that throws, or returns no tensor: its error, and no recording left behind.
    assert.throws(() => Trace.record([x], () => { throw new Error('inside'); }), /inside/);
    assert.throws(() => Trace.record([x], () => 3 as unknown as et.Tensor), /Expected a Tensor for what the traced function returned\[0\] but received/);
    assert.throws(() => Trace.record([x], (a) => { Trace.record([a], (b) => b.add(1)); return a; }), /a trace is already recording on this thread; traces do not nest/);
    // The nested attempt did not break the outer recording's clean-up: recording works again.
    const again = Trace.record([x], (a) => a.add(1));
    assert.deepEqual(values(again.trace.run([x])[0]!), values(x.add(1)));
    // Values read from tensors the function did not compute (a weight) are fine.
    const scale = et.tensor([4]);
    const fromWeight = Trace.record([x], (a) => a.mul(scale.item() as number));
    assert.deepEqual(values(fromWeight.trace.run([x])[0]!), values(x.mul(4)));
    for (const t of [trace, again.trace, fromWeight.trace]) t.dispose();
  });
});
