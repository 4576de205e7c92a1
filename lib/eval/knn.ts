// Weighted k-nearest-neighbour classification of features, the monitor of
// self-supervised training (InstDisc, DINO; Fig. 4 of the ExtreMA paper):
// features are L2-normalised, each query's k most cosine-similar bank features
// vote for their labels with weight exp(sim / T), and the class with the
// largest summed vote is the prediction.
import { Tensor, isTensor } from '../tensor/tensor';
import { describe, isFloating, type DType } from '../tensor/dtype';
import { positiveInt } from '../checks';
import { zeros } from '../tensor/creation';
import { cat, normalize } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { noGrad } from '../autograd';

export interface KnnOptions {
  /** Neighbours per query (default 200). Clipped to the bank size. */
  k?: number;
  /** Temperature T of the vote weights exp(sim / T) (default 0.07). */
  temperature?: number;
  /** Number of classes C (default: the largest bank label + 1). Bank labels must lie in [0, C). */
  numClasses?: number;
  /** Queries per chunk (default 1024): at most batchSize x N similarities exist at once. */
  batchSize?: number;
}

export interface KnnAccuracy {
  /** correct / total (NaN when there are no queries). */
  accuracy: number;
  correct: number;
  total: number;
  /** Fraction of queries whose label is among the min(5, C) classes with the largest votes. */
  top5Accuracy: number;
  top5Correct: number;
}

const WHERE = 'knnPredict';

interface Prepared {
  bank: Tensor;
  bankLabels: Tensor;
  queries: Tensor;
  k: number;
  temperature: number;
  numClasses: number;
  batchSize: number;
  computeDType: DType;
  voteDType: DType;
}

function checkFeatures(t: unknown, what: string, where: string): Tensor {
  if (!isTensor(t)) throw new TypeError(`Expected a Tensor for "${what}" of ${where} but received ${describe(t)}`);
  if (t.ndim !== 2) throw new RangeError(`Expected "${what}" of ${where} to be 2-D [count, dim] but its shape is [${t.shape.join(', ')}]`);
  if (!isFloating(t.dtype)) throw new TypeError(`Expected a floating-point "${what}" for ${where} but its dtype is ${t.dtype}`);
  return t;
}

function checkLabels(t: unknown, what: string, where: string, count: number, device: string): Tensor {
  if (!isTensor(t)) throw new TypeError(`Expected a Tensor for "${what}" of ${where} but received ${describe(t)}`);
  if (t.dtype !== 'int64') throw new TypeError(`Expected int64 "${what}" for ${where} but its dtype is ${t.dtype}`);
  if (t.ndim !== 1 || t.shape[0] !== count) {
    throw new RangeError(`Expected "${what}" of ${where} to have shape [${count}] but its shape is [${t.shape.join(', ')}]`);
  }
  if (t.device !== device) throw new RangeError(`Expected "${what}" of ${where} on ${device} (where the bank is) but it is on ${t.device}`);
  return t;
}


function prepare(bank: Tensor, bankLabels: Tensor, queries: Tensor, options: KnnOptions | undefined, where: string): Prepared {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError(`Expected an options object for ${where} but received ${describe(options)}`);
  }
  const o = options ?? {};
  checkFeatures(bank, 'bank', where);
  checkFeatures(queries, 'queries', where);
  const [n, d] = bank.shape as [number, number];
  if (n === 0) throw new RangeError(`The bank of ${where} is empty`);
  if (queries.shape[1] !== d) {
    throw new RangeError(`The queries of ${where} have ${queries.shape[1]} features but the bank has ${d} (bank [${bank.shape.join(', ')}], queries [${queries.shape.join(', ')}])`);
  }
  if (queries.device !== bank.device) throw new RangeError(`Expected "queries" of ${where} on ${bank.device} (where the bank is) but they are on ${queries.device}`);
  checkLabels(bankLabels, 'bankLabels', where, n, bank.device);

  const k = Math.min(positiveInt(o.k ?? 200, `"k" of ${where}`), n);
  const temperature = o.temperature ?? 0.07;
  if (typeof temperature !== 'number' || !(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`Expected a positive finite "temperature" for ${where} but received ${describe(temperature)}`);
  }
  const batchSize = positiveInt(o.batchSize ?? 1024, `"batchSize" of ${where}`);

  const [lo, hi] = scope(() => [bankLabels.min().item(), bankLabels.max().item()]);
  if (lo < 0) throw new RangeError(`The bank labels of ${where} must be non-negative class indices but the smallest is ${lo}`);
  let numClasses: number;
  if (o.numClasses === undefined) numClasses = hi + 1;
  else {
    numClasses = positiveInt(o.numClasses, `"numClasses" of ${where}`);
    if (hi >= numClasses) throw new RangeError(`The bank labels of ${where} must lie in [0, ${numClasses}) (numClasses) but the largest is ${hi}`);
  }

  // Same dtypes compute as they are; mixed ones in float64 if either is, else float32.
  const computeDType: DType = bank.dtype === queries.dtype ? bank.dtype
    : bank.dtype === 'float64' || queries.dtype === 'float64' ? 'float64' : 'float32';
  // Votes sum in float32 at least (exp(1 / 0.07) = 1.6e6 overflows float16).
  const voteDType: DType = computeDType === 'float64' ? 'float64' : 'float32';
  return { bank, bankLabels, queries, k, temperature, numClasses, batchSize, computeDType, voteDType };
}

/**
 * Runs the vote for every chunk of queries and hands the [len, C] vote matrix
 * to `each` (inside a scope: what each returns must be a tensor to keep, or
 * nothing). Returns what each returned, in order.
 */
function forEachChunk(p: Prepared, each: (votes: Tensor, start: number, len: number) => Tensor | void): Tensor[] {
  return noGrad(() => scope(() => {
    const bank = p.bank.dtype === p.computeDType ? p.bank : p.bank.to(p.computeDType);
    const bankT = normalize(bank, 2, 1).t(); // [D, N]
    const q = p.queries.shape[0]!;
    const results: Tensor[] = [];
    for (let start = 0; start < q; start += p.batchSize) {
      const len = Math.min(p.batchSize, q - start);
      const r = scope(() => {
        let chunk = p.queries.narrow(0, start, len);
        if (chunk.dtype !== p.computeDType) chunk = chunk.to(p.computeDType);
        const sims = normalize(chunk, 2, 1).matmul(bankT); // [len, N], cosine similarities
        const { values, indices } = sims.topk(p.k, 1, true, true); // sorted: column 0 is the nearest
        sims.dispose();
        const labels = p.bankLabels.indexSelect(0, indices.reshape([-1])).view([len, p.k]);
        const v = values.dtype === p.voteDType ? values : values.to(p.voteDType);
        // exp((sim - sim_max) / T): exp(sim / T) scaled by a positive factor per
        // query, so the same argmax, without overflow for small T.
        const weights = v.sub(v.narrow(1, 0, 1)).div(p.temperature).exp();
        const votes = zeros([len, p.numClasses], { dtype: p.voteDType, device: p.bank.device }).scatterAdd(1, labels, weights);
        return each(votes, start, len);
      });
      if (r !== undefined) results.push(r);
    }
    return results;
  }));
}

/**
 * Predicts a class for every query by a weighted vote of its k nearest bank
 * features: bank and queries are L2-normalised here (callers need not), the
 * k = min(k, N) bank features of largest cosine similarity vote for their
 * labels with weight exp(sim / T), and the prediction is the class with the
 * largest total; ties go to the smaller class index, as with torch.argmax.
 * Neighbours tied at the k-th similarity are chosen as torch.topk chooses.
 *
 * bank [N, D] and queries [Q, D] are floating point (any float dtype; votes
 * are summed in float32, float64 for float64 inputs), bankLabels int64 [N] in
 * [0, numClasses), all on one device, where the work runs. Queries are taken
 * batchSize at a time so that Q x N similarities never exist at once. No
 * gradient is recorded. Returns int64 [Q] on that device.
 */
export function knnPredict(bank: Tensor, bankLabels: Tensor, queries: Tensor, options?: KnnOptions): Tensor {
  const p = prepare(bank, bankLabels, queries, options, WHERE);
  return noGrad(() => scope(() => {
    if (queries.shape[0] === 0) return zeros([0], { dtype: 'int64', device: bank.device });
    const parts = forEachChunk(p, (votes) => votes.argmax(1));
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  }));
}

/**
 * kNN classification accuracy of labelled queries against a labelled bank
 * (see knnPredict for the vote). queryLabels is int64 [Q] on the bank's
 * device; a query label the vote cannot produce (outside [0, numClasses))
 * simply counts as a miss. Also reports top-5 accuracy: the label is among
 * the min(5, numClasses) classes with the largest votes.
 */
export function knnAccuracy(bank: Tensor, bankLabels: Tensor, queries: Tensor, queryLabels: Tensor, options?: KnnOptions): KnnAccuracy {
  const where = 'knnAccuracy';
  const p = prepare(bank, bankLabels, queries, options, where);
  const total = queries.shape[0]!;
  checkLabels(queryLabels, 'queryLabels', where, total, bank.device);
  if (total === 0) return { accuracy: NaN, correct: 0, total: 0, top5Accuracy: NaN, top5Correct: 0 };
  const top = Math.min(5, p.numClasses);
  const [correct, top5Correct] = noGrad(() => scope(() => {
    // Counts stay on the device until the end: one synchronisation, not one a chunk.
    const counts = zeros([2], { dtype: 'int64', device: bank.device });
    forEachChunk(p, (votes, start, len) => {
      const truth = queryLabels.narrow(0, start, len);
      const hit1 = votes.argmax(1).eq(truth).sum();
      const hit5 = votes.topk(top, 1, true, false).indices.eq(truth.unsqueeze(1)).any(1).sum();
      counts.add_(cat([hit1.unsqueeze(0), hit5.unsqueeze(0)], 0));
    });
    const [c1, c5] = Array.from(counts.cpu().toTypedArray() as BigInt64Array, Number);
    return [c1!, c5!];
  }));
  return { accuracy: correct / total, correct, total, top5Accuracy: top5Correct / total, top5Correct };
}
