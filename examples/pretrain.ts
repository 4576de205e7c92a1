// The ExtreMA pretraining loop written out with the typed API: data, model,
// masks, AdamW with its schedules, the EMA teacher and a checkpoint. This is
// the program to copy when trying a variant (another mask sampler, loss or
// schedule); `extrema pretrain` runs the same recipe with resume, logs and plots.
//   node dist/examples/pretrain.js [train images] [out.safetensors]
// Budget (for the tests): EXTREMA_EXAMPLE_IMAGES (default 5000), EXTREMA_EXAMPLE_EPOCHS (default 2).
// Data-parallel: the same program under a launcher that sets torchrun's
// variables joins a process group, reads its shard and averages gradients,
//   torchrun --nproc-per-node 2 --no-python node dist/examples/pretrain.js
// or from code: et.distributed.launch({ nprocPerNode: 2, command: [process.execPath, 'dist/examples/pretrain.js'] }).
import * as path from 'node:path';
import * as et from '../lib';

const BUNDLED = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist');
const trainFile = process.argv[2] ?? path.join(BUNDLED, 'train-images-idx3-ubyte.gz');
const out = process.argv[3] ?? path.resolve('runs', 'example-pretrain.safetensors');
const images = Number(process.env.EXTREMA_EXAMPLE_IMAGES ?? 5000);
const epochs = Number(process.env.EXTREMA_EXAMPLE_EPOCHS ?? 2);
const batchSize = 64;
const seed = 0;

async function main(): Promise<void> {
  // Under a launcher (WORLD_SIZE set): this process is one rank of a group; alone: rank 0 of 1.
  const group = et.distributed.worldFromEnv() === null ? null : await et.distributed.init();
  const rank = group?.rank ?? 0;
  const ranks = group?.size ?? 1;
  // Data: uint8 batches [B, 1, 28, 28], shuffled per epoch by seed, last incomplete batch dropped;
  // each rank reads its strided share of the same permutation.
  const data = et.openDataset(trainFile, { size: 28, channels: 1, limit: images });
  const loader = new et.DataLoader(data, { mode: 'train', batchSize, seed, shard: { rank, size: ranks } });
  const stepsPerEpoch = loader.stepsPerEpoch();
  const totalSteps = epochs * stepsPerEpoch;

  // Model: a small ViT student (+ predictor) and its EMA teacher; 80% of the 49 patches masked, 2 disjoint views.
  const model = new et.ExtremaModel({
    encoder: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 4, numHeads: 3, classAttentionLayers: 1 },
    projectorHiddenDim: 512, projectorDim: 128, predictorHiddenDim: 512, maskRatio: 0.8, numMasks: 2,
  }, { seed });
  const numPatches = model.base_encoder.patch_embed.numPatches;

  // Every rank starts from rank 0's weights, and gradients are averaged over the ranks during backward.
  const ddp = group === null ? null : new et.distributed.DistributedDataParallel(group, model.studentParameters().map(([, p]) => p));
  await ddp?.broadcastFromRoot([...model.stateDict().values()]);

  // AdamW over the student only, no weight decay on 1-D parameters and biases; lr = base x (global) batch / 256.
  const peakLr = et.scaledLr(5e-4, batchSize * ranks);
  const optimizer = new et.AdamW(et.paramGroupsForDecay(model.studentParameters(), { weightDecay: 0.1 }), { lr: peakLr, betas: [0.9, 0.95] });
  // Shared crop, then colour per view (grayscale data: brightness and contrast only).
  const augment = et.data.augmentConfig({ size: 28, channels: 1, jitter: { saturation: 0, hue: 0 }, grayscaleP: 0 });
  const augmentRng = et.Generator.create(seed + 1 + 1000 * rank);
  const maskRng = et.Generator.create(seed + 2 + 1000 * rank);

  let iteration = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    let sum = 0;
    for await (const { batches } of loader.steps(epoch)) {
      const t = iteration / stepsPerEpoch; // fractional epochs drive every schedule
      optimizer.setLr(et.warmupCosine(t, { base: peakLr, warmupSteps: Math.min(1, epochs / 2), totalSteps: epochs }));
      for await (const batch of batches) {
        sum += et.scope(() => {
          const { student, teacher } = et.data.augmentPair(batch.images, augment, augmentRng);
          // The masks, drawn here so a variant can change them: int64 [B, M, n] indices of the patches each view shows.
          const visible = et.sampleMasks(student.shape[0]!, numPatches, { ratio: 0.8, numMasks: 2, generator: maskRng });
          const { loss } = model.forward(student, teacher, { visible });
          ddp?.beforeBackward();
          loss.backward();
          return loss.item();
        });
        et.data.disposeBatch(batch);
      }
      await ddp?.afterBackward();
      optimizer.step();
      optimizer.zeroGrad();
      model.updateTeacher(et.momentumAt(t, epochs, 0.996)); // cosine 0.996 -> 1
      iteration++;
    }
    if (rank === 0) console.log(`epoch ${epoch + 1}/${epochs}: mean loss ${(sum / stepsPerEpoch).toFixed(4)} (${ranks > 1 ? "rank 0's share; " : ''}${iteration}/${totalSteps} steps)`);
  }

  // The checkpoint (rank 0 writes it): the authors' key names, the config in
  // the metadata; `extrema finetune --from` and `extrema knn` read it.
  if (rank === 0) {
    et.saveCheckpoint(out, model);
    console.log(`checkpoint: ${out}`);
  }
  ddp?.dispose();
  et.distributed.destroy();
  optimizer.dispose();
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
