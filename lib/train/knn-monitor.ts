// The kNN monitor: teacher features (after the final norm) of a labelled bank
// and labelled queries, both through the evaluation transform only, then
// weighted kNN (cosine similarity, exp(sim / T) votes).
import { openDataset, type ImageDataset } from '../data/dataset';
import { loadEncoder } from '../extrema/checkpoint';
import { embedDataset } from '../eval/embed';
import { knnAccuracy } from '../eval/knn';
import type { VisionTransformer } from '../nn/vision-transformer';
import { subsetDataset } from '../data/subset';
import { cat } from '../tensor/functional';
import { zeros, full } from '../tensor/creation';
import { scope } from '../tensor/scope';
import type { Tensor } from '../tensor/tensor';
import type { ProcessGroup } from '../runtime/process-group';

export interface KnnSets {
  bank: ImageDataset;
  queries: ImageDataset;
}

export function openKnnSets(bank: string, queries: string, size: number, channels: 1 | 3, bankLimit: number, queryLimit: number): KnnSets {
  const open = (p: string, limit: number, what: string) => {
    const d = openDataset(p, { size, channels, limit });
    if (d.labels === null) throw new Error(`The kNN ${what} ${p} has no labels (an IDX file needs its labels-idx1 file beside it; a folder needs one sub-folder per class)`);
    return d;
  };
  return { bank: open(bank, bankLimit, 'bank'), queries: open(queries, queryLimit, 'queries') };
}

interface LabelledFeatures {
  features: Tensor;
  labels: Tensor;
  dispose(): void;
}

/**
 * kNN top-1 accuracy of the encoder's features on the sets. In a
 * data-parallel run (`group`), each rank embeds its contiguous share of the
 * bank and the queries, the features are all-gathered, and every rank
 * computes the same accuracy.
 */
export async function knnMonitor(encoder: VisionTransformer, sets: KnnSets, o: { k: number; temperature: number; device?: string; batchSize?: number }, group: ProcessGroup | null = null): Promise<number> {
  const embed = async (data: ImageDataset): Promise<LabelledFeatures> => {
    if (group === null) {
      const e = await embedDataset(encoder, data, o);
      return { features: e.features, labels: e.labels!, dispose: () => e.dispose() };
    }
    return gatheredFeatures(encoder, data, group, o);
  };
  const bank = await embed(sets.bank);
  try {
    const queries = await embed(sets.queries);
    try {
      return knnAccuracy(bank.features, bank.labels, queries.features, queries.labels, { k: o.k, temperature: o.temperature }).accuracy;
    } finally {
      queries.dispose();
    }
  } finally {
    bank.dispose();
  }
}

/** This rank embeds its contiguous share of `data`; every rank gets all the rows, in dataset order. */
async function gatheredFeatures(encoder: VisionTransformer, data: ImageDataset, group: ProcessGroup, o: { device?: string; batchSize?: number }): Promise<LabelledFeatures> {
  const per = Math.ceil(data.count / group.size);
  const start = Math.min(data.count, group.rank * per);
  const end = Math.min(data.count, start + per);
  let features: Tensor;
  let labels: Tensor;
  if (end > start) {
    const part = await embedDataset(encoder, subsetDataset(data, Array.from({ length: end - start }, (_, i) => start + i)), o);
    // every rank sends `per` rows (all-gather wants equal shapes); the last share is padded
    ({ features, labels } = scope(() => ({
      features: cat([part.features, zeros([per - (end - start), encoder.embedDim], { device: part.features.device })], 0).keep(),
      labels: cat([part.labels!, full([per - (end - start)], -1, { dtype: 'int64', device: part.features.device })], 0).keep(),
    })));
    part.dispose();
  } else {
    features = zeros([per, encoder.embedDim], { device: o.device });
    labels = full([per], -1, { dtype: 'int64', device: o.device });
  }
  const parts: Tensor[] = [];
  try {
    parts.push(...(await group.allGather(features)));
    parts.push(...(await group.allGather(labels)));
    const ranks = group.size;
    const all = scope(() => ({
      features: cat(parts.slice(0, ranks), 0).narrow(0, 0, data.count).contiguous().keep(),
      labels: cat(parts.slice(ranks), 0).narrow(0, 0, data.count).contiguous().keep(),
    }));
    return { ...all, dispose: () => { all.features.dispose(); all.labels.dispose(); } };
  } finally {
    for (const t of [features, labels, ...parts]) t.dispose();
  }
}

export interface CheckpointKnnOptions {
  /** This project's .safetensors or the authors' .pth. */
  checkpoint: string;
  /** Labelled bank and query images. */
  train: string;
  test: string;
  /** First n bank / query images (0: all). */
  bankLimit: number;
  queryLimit: number;
  k: number;
  temperature: number;
  batchSize: number;
  device: string;
  /** Attention heads of a .pth model (default width / 64). */
  heads?: number;
}

/** `extrema knn`: the kNN top-1 accuracy of a checkpoint's teacher on labelled bank and query images. */
export async function checkpointKnn(o: CheckpointKnnOptions): Promise<{ accuracy: number; bank: number; queries: number }> {
  const { encoder, config } = loadEncoder(o.checkpoint, { numHeads: o.heads, device: o.device });
  try {
    const enc = config.encoder;
    const sets = openKnnSets(o.train, o.test, enc.imgSize[0], enc.inChans === 1 ? 1 : 3, o.bankLimit, o.queryLimit);
    const accuracy = await knnMonitor(encoder, sets, o);
    return { accuracy, bank: sets.bank.count, queries: sets.queries.count };
  } finally {
    encoder.dispose();
  }
}
