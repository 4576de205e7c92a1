// Semi-supervised fine-tuning trains on a fraction of the labels: a
// class-balanced subset (the same fraction of every class, at least one image
// each) drawn with a seed. The chosen indices are written to the run folder as
// JSON, so a resumed run reads the very same subset back and anyone can
// reproduce the split from the file alone.
import * as fs from 'node:fs';
import { Generator } from '../runtime/generator';
import { randperm } from '../tensor/creation';
import { writeFileAtomic } from '../io/fs';
import { fail, intInRange, numberInRange } from '../checks';
import type { ImageDataset } from './dataset';

export interface LabelSubset {
  fraction: number;
  seed: number;
  /** Items per class in the subset, in class order. */
  perClass: number[];
  /** Dataset indices, sorted ascending. */
  indices: number[];
}

export interface LabelFractionOptions {
  fraction: number;
  seed: number;
  /** The JSON file of the subset: read back when it exists and matches (fraction, seed, dataset size), written otherwise. */
  file?: string;
}

/**
 * A class-balanced, seeded subset of a labelled dataset: for each class c with
 * n_c images, round(fraction * n_c) of them, drawn by one seeded permutation
 * of that class's indices (in dataset order). A fraction of 1 keeps everything.
 * A class left without any image is an error naming it, since the classifier
 * could never learn it.
 */
export function labelFractionSubset(data: ImageDataset, options: LabelFractionOptions): LabelSubset {
  const fraction = numberInRange(options.fraction, '--label-fraction', 0, 1, { lowOpen: true });
  const seed = intInRange(options.seed, 'the subset seed', 0);
  const labels = data.labels;
  if (labels === null) throw new Error(`Expected labelled training images for --label-fraction but ${data.path} has no labels`);
  if (options.file !== undefined && fs.existsSync(options.file)) {
    const saved = readSubset(options.file, data.count);
    if (saved.fraction === fraction && saved.seed === seed) return saved;
  }
  const numClasses = data.classes?.length ?? labels.reduce((m, l) => Math.max(m, l + 1), 0);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  const g = Generator.create(seed);
  const indices: number[] = [];
  const perClass = byClass.map((members, c) => {
    const take = fraction === 1 ? members.length : Math.round(fraction * members.length);
    if (take === 0) {
      const name = data.classes?.[c] !== undefined ? `"${data.classes[c]}" (class ${c})` : `class ${c}`;
      throw new RangeError(`--label-fraction ${fraction} leaves ${name} without any image: it has ${members.length} image(s) in ${data.path}; use a fraction of at least ${members.length === 0 ? 'any (the class is empty in the data)' : (0.5 / members.length).toPrecision(2)}`);
    }
    // One permutation per class from the same generator: the subset depends on (seed, labels) alone.
    const perm = randperm(members.length, { generator: g });
    const order = perm.toTypedArray<'int64'>();
    perm.dispose();
    for (let k = 0; k < take; k++) indices.push(members[Number(order[k])]!);
    return take;
  });
  indices.sort((a, b) => a - b);
  const subset: LabelSubset = { fraction, seed, perClass, indices };
  if (options.file !== undefined) writeFileAtomic(options.file, Buffer.from(`${JSON.stringify({ ...subset, count: data.count })}\n`));
  return subset;
}

/** A subset written by labelFractionSubset, checked against the dataset it indexes. */
export function readSubset(file: string, count: number): LabelSubset {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`Cannot read the label subset ${file}: ${(e as Error).message}`, { cause: e });
  }
  const indices = v.indices;
  if (!Array.isArray(indices) || !indices.every((i) => Number.isInteger(i) && i >= 0 && i < count)) {
    fail(`a list of item indices in [0, ${count})`, `"indices" of ${file}`, indices);
  }
  if (v.count !== undefined && v.count !== count) throw new RangeError(`The label subset ${file} was drawn from ${String(v.count)} images but the training set has ${count}`);
  return { fraction: Number(v.fraction), seed: Number(v.seed), perClass: (v.perClass as number[] | undefined) ?? [], indices: indices as number[] };
}

/** The items of `data` at `indices`, in that order (labels and names follow). */
export function subsetDataset(data: ImageDataset, indices: readonly number[]): ImageDataset {
  for (const i of indices) if (!Number.isInteger(i) || i < 0 || i >= data.count) fail(`item indices in [0, ${data.count})`, 'the subset', i);
  const idx = Int32Array.from(indices);
  const labels = data.labels === null ? null : Int32Array.from(idx, (i) => data.labels![i]!);
  return {
    kind: data.kind, path: data.path, count: idx.length, size: data.size, channels: data.channels, labels, classes: data.classes,
    files: data.files === null ? null : Array.from(idx, (i) => data.files![i]!),
    describe: `${data.describe}; subset of ${idx.length}`,
    read: (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= idx.length) throw new RangeError(`Expected an item index in [0, ${idx.length}) but received ${String(i)}`);
      return data.read(idx[i]!);
    },
    name: (i) => data.name(idx[i] ?? -1),
    // The batch read of the whole dataset (a pack's), through the index mapping.
    ...(data.readInto === undefined ? {} : {
      readInto: (items: readonly number[], into: Uint8Array) => {
        for (const i of items) if (!Number.isInteger(i) || i < 0 || i >= idx.length) throw new RangeError(`Expected an item index in [0, ${idx.length}) but received ${String(i)}`);
        return data.readInto!(items.map((i) => idx[i]!), into);
      },
    }),
  };
}
