// kNN monitor: predictions match an independent NumPy implementation written
// from the definition, chunking changes nothing, the weighting behaves as the
// vote says, arguments are checked, and nothing leaks.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as et from '../../lib';
import { knnPredict, knnAccuracy } from '../../lib/eval';
import { runOracle } from '../helpers/oracle';

function ints(t: et.Tensor): number[] {
  return et.scope(() => Array.from(t.cpu().toTypedArray() as BigInt64Array, Number));
}

/** numClasses clusters in `dim` dimensions, noisy enough that the kNN vote is not trivial. */
function clustered(seed: number, n: number, q: number, dim: number, numClasses: number, noise: number) {
  et.manualSeed(seed);
  return et.scope(() => {
    const centers = et.randn([numClasses, dim]);
    const bankLabels = et.randint(0, numClasses, [n]);
    const queryLabels = et.randint(0, numClasses, [q]);
    // Random positive scales per row: the classifier must not depend on feature norms.
    const bank = centers.indexSelect(0, bankLabels).add(et.randn([n, dim]).mul(noise)).mul(et.rand([n, 1]).mul(4).add(0.1));
    const queries = centers.indexSelect(0, queryLabels).add(et.randn([q, dim]).mul(noise));
    return { bank, bankLabels, queries, queryLabels };
  });
}

test('predictions and accuracy match the NumPy oracle on clustered features', () => {
  const before = et.memory().liveTensors;
  const d = clustered(1, 2000, 500, 64, 10, 2.2);
  const cases = [
    { k: 200, temperature: 0.07 },
    { k: 20, temperature: 0.5 },
    { k: 1, temperature: 0.07 },
  ];
  const out = runOracle('knn_oracle.py', { num_classes: 10, cases }, {
    bank: d.bank, bank_labels: d.bankLabels, queries: d.queries,
  });
  cases.forEach((c, n) => et.scope(() => {
    const expected = ints(out.get(`pred_${n}`)!);
    const margin = Array.from(out.get(`margin_${n}`)!.toTypedArray() as Float64Array);
    const pred = knnPredict(d.bank, d.bankLabels, d.queries, c);
    assert.equal(pred.dtype, 'int64');
    assert.deepEqual(pred.shape, [500]);
    const got = ints(pred);
    pred.dispose();
    const differ = got.map((g, i) => (g === expected[i] ? -1 : i)).filter((i) => i >= 0);
    // Random floats make exact vote ties practically impossible: a
    // disagreement would have to sit on a rounding-level margin.
    assert.deepEqual(differ.map((i) => ({ i, margin: margin[i] })), [], `k ${c.k}, T ${c.temperature}`);
    const truth = ints(d.queryLabels);
    const correct = expected.filter((p, i) => p === truth[i]).length;
    const acc = knnAccuracy(d.bank, d.bankLabels, d.queries, d.queryLabels, c);
    assert.equal(acc.correct, correct);
    assert.equal(acc.total, 500);
    assert.equal(acc.accuracy, correct / 500);
    assert.ok(acc.top5Correct >= acc.correct && acc.top5Correct <= 500);
    // The data is meant to be neither trivial nor hopeless.
    assert.ok(acc.accuracy > 0.3 && acc.accuracy < 0.98, `accuracy ${acc.accuracy}`);
  }));
  for (const t of [...Object.values(d), ...out.values()]) t.dispose();
  assert.equal(et.memory().liveTensors, before);
});

test('chunked and unchunked runs predict the same; float64 agrees with float32', () => {
  const d = clustered(2, 1500, 333, 32, 7, 1.8);
  const whole = ints(knnPredict(d.bank, d.bankLabels, d.queries, { batchSize: 100000 }));
  for (const batchSize of [1, 37, 128, 333]) {
    assert.deepEqual(ints(knnPredict(d.bank, d.bankLabels, d.queries, { batchSize })), whole, `batchSize ${batchSize}`);
  }
  const a = knnAccuracy(d.bank, d.bankLabels, d.queries, d.queryLabels, { batchSize: 50 });
  const b = knnAccuracy(d.bank, d.bankLabels, d.queries, d.queryLabels);
  assert.deepEqual(a, b);
  assert.deepEqual(ints(knnPredict(d.bank.double(), d.bankLabels, d.queries.double())), whole);
  // Half precision runs (votes in float32) and mostly agrees.
  const half = ints(knnPredict(d.bank.to('bfloat16'), d.bankLabels, d.queries.to('bfloat16')));
  assert.ok(half.filter((p, i) => p === whole[i]).length > 0.9 * whole.length);
  // Mixed dtypes are accepted.
  assert.deepEqual(ints(knnPredict(d.bank.double(), d.bankLabels, d.queries)), whole);
});

test('k = 1 is the nearest neighbour; the temperature decides between one close and two far neighbours', () => {
  const deg = Math.PI / 180;
  const unit = (a: number) => [Math.cos(a * deg), Math.sin(a * deg)];
  // Class 0 at 8 degrees from the query, class 1 twice at 25 degrees (either side), class 2 far.
  const bank = et.tensor([unit(8), unit(25), unit(-25), unit(150), unit(170)]).mul(et.tensor([[3], [0.5], [7], [1], [2]]));
  const labels = et.tensor([0, 1, 1, 2, 2], { dtype: 'int64' });
  const query = et.tensor([[2, 0]]);
  const predict = (k: number, temperature: number) => ints(knnPredict(bank, labels, query, { k, temperature }))[0];
  assert.equal(predict(1, 0.07), 0);
  assert.equal(predict(3, 0.01), 0); // exp(cos 8 / T) dominates
  assert.equal(predict(3, 0.07), 0); // cos 8 = 0.990, cos 25 = 0.906: e^1.2 = 3.3 > 2
  assert.equal(predict(3, 1), 1); // 2 e^0.906 > e^0.990
  assert.equal(predict(3, 1e-4), 0); // tiny temperatures do not overflow into ties
  // k larger than the bank: every feature votes; class 2 is far, so it never wins.
  assert.equal(predict(500, 1), 1);
  // Queries near each bank point get that point's label with k = 1.
  const near = et.tensor([unit(7), unit(26), unit(-24), unit(151), unit(169)]);
  assert.deepEqual(ints(knnPredict(bank, labels, near, { k: 1 })), [0, 1, 1, 2, 2]);
  // An exact tie goes to the smaller class, as torch.argmax: two equidistant neighbours.
  const tieBank = et.tensor([[1, 1], [1, -1]]);
  const tieLabels = et.tensor([3, 1], { dtype: 'int64' });
  assert.deepEqual(ints(knnPredict(tieBank, tieLabels, et.tensor([[1, 0]]), { k: 2 })), [1]);
  // numClasses larger than needed changes nothing; empty query sets are fine.
  assert.deepEqual(ints(knnPredict(bank, labels, near, { k: 1, numClasses: 40 })), [0, 1, 1, 2, 2]);
  assert.deepEqual(knnPredict(bank, labels, et.zeros([0, 2])).shape, [0]);
  const acc = knnAccuracy(bank, labels, near, et.tensor([0, 1, 2, 2, 7], { dtype: 'int64' }), { k: 1 });
  assert.deepEqual({ correct: acc.correct, total: acc.total, accuracy: acc.accuracy }, { correct: 3, total: 5, accuracy: 0.6 });
  assert.equal(acc.top5Correct, 4); // 3 classes only: every label in range is in the "top 5"
});

test('no gradient is recorded and inputs are left untouched', () => {
  const bank = et.randn([50, 8], { requiresGrad: true });
  const labels = et.randint(0, 3, [50]);
  const q = et.randn([10, 8]);
  const copy = bank.detach().clone();
  const pred = knnPredict(bank, labels, q, { k: 5 });
  assert.equal(pred.requiresGrad, false);
  assert.ok(et.scope(() => bank.detach().eq(copy).all().item()));
});

test('arguments are checked with clear errors', () => {
  const bank = et.randn([20, 4]);
  const labels = et.randint(0, 3, [20]);
  const q = et.randn([5, 4]);
  const ql = et.randint(0, 3, [5]);
  assert.throws(() => knnPredict(bank, labels, et.randn([5, 3])), /queries of knnPredict have 3 features but the bank has 4/);
  assert.throws(() => knnPredict(bank.flatten(), labels, q), /"bank" of knnPredict to be 2-D/);
  assert.throws(() => knnPredict(bank, labels.to('int32'), q), /int64 "bankLabels"/);
  assert.throws(() => knnPredict(bank, labels.narrow(0, 0, 19), q), /"bankLabels" of knnPredict to have shape \[20\]/);
  assert.throws(() => knnPredict(bank.to('int64'), labels, q), /floating-point "bank"/);
  assert.throws(() => knnPredict(bank, labels.sub(1), q), /non-negative class indices but the smallest is -1/);
  assert.throws(() => knnPredict(bank, labels, q, { numClasses: 2 }), /lie in \[0, 2\).*largest is 2/);
  assert.throws(() => knnPredict(bank, labels, q, { k: 0 }), /positive integer for "k"/);
  assert.throws(() => knnPredict(bank, labels, q, { k: 2.5 }), /positive integer for "k"/);
  assert.throws(() => knnPredict(bank, labels, q, { temperature: 0 }), /positive finite "temperature"/);
  assert.throws(() => knnPredict(bank, labels, q, { temperature: -1 }), /positive finite "temperature"/);
  assert.throws(() => knnPredict(bank, labels, q, { batchSize: 0 }), /"batchSize"/);
  assert.throws(() => knnPredict(et.zeros([0, 4]), et.zeros([0], { dtype: 'int64' }), q), /bank of knnPredict is empty/);
  assert.throws(() => knnPredict(bank, [1, 2] as unknown as et.Tensor, q), /Tensor for "bankLabels"/);
  assert.throws(() => knnAccuracy(bank, labels, q, ql.narrow(0, 0, 4)), /"queryLabels" of knnAccuracy to have shape \[5\]/);
  assert.throws(() => knnAccuracy(bank, labels, q, ql.float()), /int64 "queryLabels"/);
});

test('no tensor outlives a call', () => {
  const d = clustered(3, 300, 100, 16, 5, 1);
  const before = et.memory().liveTensors;
  const pred = knnPredict(d.bank, d.bankLabels, d.queries, { k: 10, batchSize: 7 });
  assert.equal(et.memory().liveTensors, before + 1);
  pred.dispose();
  knnAccuracy(d.bank, d.bankLabels, d.queries, d.queryLabels, { k: 10, batchSize: 7 });
  assert.throws(() => knnPredict(d.bank, d.bankLabels, d.queries, { numClasses: 2 }));
  assert.equal(et.memory().liveTensors, before);
  for (const t of Object.values(d)) t.dispose();
});
