// The ExtreMA model from code: a few objective steps on random images, the
// teacher's features and attention maps, and a checkpoint round trip.
//   node dist/examples/extrema-model.js
import * as os from 'node:os';
import * as path from 'node:path';
import * as et from '../lib';

const model = new et.ExtremaModel({
  encoder: { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 96, depth: 4, numHeads: 3 },
  projectorHiddenDim: 512, projectorDim: 128, predictorHiddenDim: 512,
  maskRatio: 0.8, numMasks: 2,                  // 9 of 49 tokens per view, 2 disjoint views
}, { seed: 0 });
console.log(`student ${(model.base_encoder.numParameters() / 1e6).toFixed(2)}M + predictor ${(model.predictor.numParameters() / 1e6).toFixed(2)}M parameters`);

const images = et.rand([32, 1, 28, 28]).keep();
const params = model.studentParameters().map(([, p]) => p);
for (let step = 0; step < 5; step++) {
  et.scope(() => {
    const { loss } = model.forward(images, images);  // shared view; masks sampled per step
    loss.backward();
    et.noGrad(() => params.forEach((p) => { p.sub_(p.grad!, 0.05); p.grad = null; }));
    model.updateTeacher(et.momentumAt(step, 5));
    console.log(`step ${step}  loss ${loss.item().toFixed(4)}`);
  });
}

et.scope(() => {
  const out = et.noGrad(() => model.momentum_encoder.encode(images, { attentionOf: 'blocks_token.1' }));
  console.log(`instance ${out.instance.shape}  tokens ${out.tokens.shape}  class attention ${out.attention!.shape}`);
});

const file = path.join(os.tmpdir(), 'extrema-example.safetensors');
et.saveCheckpoint(file, model);
const again = et.loadCheckpoint(file);
console.log(`checkpoint ${file}: ${again.stateDict().size} tensors, config rebuilt (${again.config.encoder.embedDim} wide)`);
again.dispose();
model.dispose();
images.dispose();
