// Fine-tuning a pretrained checkpoint with the typed API: a mean-pooled ViT
// classifier from the encoder, AdamW with layer-wise lr decay, warmup +
// cosine, batched augmentation with mixup/cutmix, then test accuracy.
// `extrema finetune` runs the full recipe (RandAugment, EMA, resume, plots).
//   node dist/examples/finetune.js <checkpoint.safetensors | none> [train] [test]
// train/test: an image folder (one sub-folder per class) or an IDX file with its labels beside it.
// Budget (for the tests): EXTREMA_EXAMPLE_IMAGES (default 5000), EXTREMA_EXAMPLE_EPOCHS (default 3).
import * as path from 'node:path';
import * as et from '../lib';

const BUNDLED = path.resolve(__dirname, '..', '..', 'examples', 'data', 'fashion-mnist');
const from = process.argv[2] ?? 'none';
const trainPath = process.argv[3] ?? path.join(BUNDLED, 'train-images-idx3-ubyte.gz');
const testPath = process.argv[4] ?? path.join(BUNDLED, 't10k-images-idx3-ubyte.gz');
const images = Number(process.env.EXTREMA_EXAMPLE_IMAGES ?? 5000);
const epochs = Number(process.env.EXTREMA_EXAMPLE_EPOCHS ?? 3);
const batchSize = 64;
const seed = 0;

async function main(): Promise<void> {
  // The classes come from the training set; the model (its head) needs their number first.
  const labelled = et.openDataset(trainPath, { size: 1, limit: images });
  const numClasses = labelled.classes?.length ?? labelled.labels!.reduce((m, l) => Math.max(m, l + 1), 0);

  // The classifier: the checkpoint's encoder blocks, mean pooling + fc_norm + a fresh head (or all fresh with 'none').
  const model = et.evaluation.classifierFrom(from, {
    numClasses, dropPathRate: 0.1, seed,
    ...(from === 'none' ? { encoder: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 4, numHeads: 3 } } : {}),
  });
  const size = model.config.encoder.imgSize[0];
  const channels = model.config.encoder.inChans === 1 ? 1 : 3;
  const train = et.openDataset(trainPath, { size, channels, limit: images });
  const test = et.openDataset(testPath, { size, channels, limit: Math.ceil(images / 5) });
  const loader = new et.DataLoader(train, { mode: 'train', batchSize, seed });
  const stepsPerEpoch = loader.stepsPerEpoch();

  // Layer-wise lr decay: the head learns at the full rate, block i at 0.75^(depth - i), the embeddings slowest.
  const peakLr = et.scaledLr(1e-3, batchSize);
  const optimizer = new et.AdamW(et.optim.layerDecayParamGroups(model, { weightDecay: 0.05, layerDecay: 0.75 }), { lr: peakLr, betas: [0.9, 0.999] });
  const rng = et.Generator.create(seed + 1);
  const norm = et.defaultNormalization(channels);
  const mix = { mixupAlpha: 0.8, cutmixAlpha: 1, switchProb: 0.5, prob: 1, labelSmoothing: 0.1, numClasses };

  let iteration = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    let sum = 0;
    model.train();
    for await (const { batches } of loader.steps(epoch)) {
      optimizer.setLr(et.warmupCosine(iteration / stepsPerEpoch, { base: peakLr, warmupSteps: Math.min(1, epochs / 2), totalSteps: epochs, final: 1e-6 }));
      for await (const batch of batches) {
        sum += et.scope(() => {
          // RandomResizedCrop + flip as one grid_sample, normalise, erase, then mix the batch: soft targets.
          const x = batch.images.float();
          const boxes = et.data.randomResizedCropBoxes(x.shape[0]!, size, size, [0.5, 1], [3 / 4, 4 / 3], rng);
          const flips = et.rand([x.shape[0]!], { generator: rng }).lt(0.5);
          const views = et.data.normalizeChannels(et.data.resizedCrop(x, boxes, size, flips).div(255), norm.mean, norm.std);
          const mixed = et.data.mixupCutmix(et.data.randomErasing(views, 0.25, rng), batch.labels!, mix, rng);
          const loss = et.data.softTargetCrossEntropy(model.forward(mixed.images), mixed.targets);
          loss.backward();
          return loss.item();
        });
        et.data.disposeBatch(batch);
      }
      optimizer.step();
      optimizer.zeroGrad();
      iteration++;
    }
    const { top1, top5 } = await et.train.evaluateClassifier(model, test, { batchSize: 256 });
    console.log(`epoch ${epoch + 1}/${epochs}: train loss ${(sum / stepsPerEpoch).toFixed(4)}, test top-1 ${(top1 * 100).toFixed(2)}% top-5 ${(top5 * 100).toFixed(2)}%`);
  }

  const { top1, count } = await et.train.evaluateClassifier(model, test, { batchSize: 256 });
  console.log(`test accuracy: ${(top1 * 100).toFixed(2)}% on ${count} images`);
  optimizer.dispose();
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
