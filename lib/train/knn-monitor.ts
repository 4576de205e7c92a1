// The kNN monitor: teacher features (after the final norm) of a labelled bank
// and labelled queries, both through the evaluation transform only, then
// weighted kNN (cosine similarity, exp(sim / T) votes).
import { DataLoader } from '../data/loader';
import { openDataset, type ImageDataset } from '../data/dataset';
import { defaultNormalization } from '../data/preprocess';
import { knnAccuracy } from '../eval/knn';
import { noGrad } from '../autograd';
import { cat } from '../tensor/functional';
import { scope } from '../tensor/scope';
import { tensor } from '../tensor/creation';
import type { Tensor } from '../tensor/tensor';
import type { VisionTransformer } from '../nn/vision-transformer';

export interface KnnSets {
  bank: ImageDataset;
  queries: ImageDataset;
}

export function openKnnSets(bank: string, queries: string, size: number, channels: 1 | 3, bankLimit: number, queryLimit: number): KnnSets {
  const open = (p: string, limit: number, what: string) => {
    const d = openDataset(p, { size, channels, ...(limit > 0 ? { limit } : {}) });
    if (d.labels === null) throw new Error(`The kNN ${what} ${p} has no labels (an IDX file needs its labels-idx1 file beside it; a folder needs one sub-folder per class)`);
    return d;
  };
  return { bank: open(bank, bankLimit, 'bank'), queries: open(queries, queryLimit, 'queries') };
}

/** Instance features [N, D] and labels [N] of a dataset, in order, with the encoder in eval mode. */
export async function embedDataset(encoder: VisionTransformer, data: ImageDataset, options: { batchSize?: number; device?: string } = {}): Promise<{ features: Tensor; labels: Tensor }> {
  const loader = new DataLoader(data, { batchSize: options.batchSize ?? 256, shuffle: false, dropLast: false, device: options.device ?? 'cpu', strict: true });
  const { mean, std } = defaultNormalization(data.channels);
  const parts: Tensor[] = [];
  const labels: Tensor[] = [];
  const wasTraining = encoder.training;
  encoder.eval();
  try {
    const m = tensor(mean, { device: options.device }).view(1, -1, 1, 1).keep();
    const s = tensor(std, { device: options.device }).view(1, -1, 1, 1).keep();
    for await (const batch of loader.epoch(0)) {
      parts.push(scope(() => noGrad(() => encoder.encode(batch.images.float().div(255).sub(m).div(s)).instance)).keep());
      labels.push((batch.labels as Tensor).keep());
      batch.images.dispose();
    }
    m.dispose();
    s.dispose();
    const out = { features: cat(parts, 0).keep(), labels: cat(labels, 0).keep() };
    return out;
  } finally {
    for (const t of [...parts, ...labels]) t.dispose();
    encoder.train(wasTraining);
  }
}

/** kNN top-1 accuracy of the encoder's features on the sets. */
export async function knnMonitor(encoder: VisionTransformer, sets: KnnSets, o: { k: number; temperature: number; device?: string; batchSize?: number }): Promise<number> {
  const bank = await embedDataset(encoder, sets.bank, o);
  const queries = await embedDataset(encoder, sets.queries, o);
  try {
    return knnAccuracy(bank.features, bank.labels, queries.features, queries.labels, { k: o.k, temperature: o.temperature }).accuracy;
  } finally {
    for (const t of [bank.features, bank.labels, queries.features, queries.labels]) t.dispose();
  }
}
