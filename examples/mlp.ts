// A two-layer MLP learning XOR with autograd and plain SGD.
//   node dist/examples/mlp.js
import * as et from '../lib';

et.manualSeed(0);
const x = et.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]);
const y = et.tensor([0, 1, 1, 0], { dtype: 'int64' });
const w1 = et.randn([2, 16], { requiresGrad: true });
const b1 = et.zeros([16], { requiresGrad: true });
const w2 = et.randn([16, 2], { requiresGrad: true });
const params = [w1, b1, w2];

for (let step = 0; step <= 500; step++) {
  et.scope(() => {                                   // frees this step's tensors
    const logits = x.matmul(w1).add(b1).tanh().matmul(w2);
    const loss = et.crossEntropy(logits, y);
    loss.backward();
    et.noGrad(() => params.forEach((p) => { p.sub_(p.grad!, 0.1); p.grad = null; }));
    if (step % 100 === 0) console.log(`step ${step}  loss ${loss.item().toFixed(4)}`);
  });
}
console.log('predictions', et.scope(() => x.matmul(w1).add(b1).tanh().matmul(w2).argmax(1).toArray()));
