// One rank of a distributed pretraining test, started by extrema's launcher:
// pretrain(recipe from argv[2]) under torchrun's environment. With
// DIE_AT_ITERATION set, rank 1 kills itself (SIGKILL, no clean-up) after
// that optimizer step, as a crashed worker would.
import { pretrain } from '../../lib/train';

const recipe = JSON.parse(process.argv[2]!);
const dieAt = Number(process.env.DIE_AT_ITERATION ?? 0);
pretrain(recipe, {
  onStep: ({ iteration }) => {
    if (dieAt > 0 && process.env.RANK === '1' && iteration === dieAt) process.kill(process.pid, 'SIGKILL');
  },
}, { resume: 'auto' }).then((r) => {
  process.stdout.write(`${JSON.stringify({ rank: Number(process.env.RANK), iterations: r.iterations, losses: r.losses, knnAfter: r.knnAfter })}\n`);
}).catch((e: Error) => {
  process.stderr.write(`rank ${process.env.RANK}: ${e.message}\n`);
  process.exit(1);
});
