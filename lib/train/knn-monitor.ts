// The kNN monitor: teacher features (after the final norm) of a labelled bank
// and labelled queries, both through the evaluation transform only, then
// weighted kNN (cosine similarity, exp(sim / T) votes).
import { openDataset, type ImageDataset } from '../data/dataset';
import { loadEncoder } from '../extrema/checkpoint';
import { embedDataset } from '../eval/embed';
import { knnAccuracy } from '../eval/knn';
import type { VisionTransformer } from '../nn/vision-transformer';

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

/** kNN top-1 accuracy of the encoder's features on the sets. */
export async function knnMonitor(encoder: VisionTransformer, sets: KnnSets, o: { k: number; temperature: number; device?: string; batchSize?: number }): Promise<number> {
  const bank = await embedDataset(encoder, sets.bank, o);
  try {
    const queries = await embedDataset(encoder, sets.queries, o);
    try {
      return knnAccuracy(bank.features, bank.labels!, queries.features, queries.labels!, { k: o.k, temperature: o.temperature }).accuracy;
    } finally {
      queries.dispose();
    }
  } finally {
    bank.dispose();
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
