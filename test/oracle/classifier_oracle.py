# Oracle for the fine-tuning classifier, with timm's mean-pooled ViT.
# argv: spec.json in.safetensors out.safetensors
# spec.task:
#  - "timm": load the safetensors file spec.checkpoint (written by
#    saveClassifier) into VisionTransformer(global_pool='avg',
#    class_token=False, fc_norm=True, ...) with strict=True (names listed in
#    spec.extra are not weights and are dropped first); return eval-mode
#    "logits" and softmax "probs" for inputs "images" (or uint8 "pixels",
#    normalised with spec.mean and spec.std), and with inputs "labels" the gradient of
#    the mean cross-entropy for every parameter as "grad:<name>".
#  - "save_pth": torch.save an authors'-style checkpoint of the input tensors
#    ({"epoch", "state_dict": {"module." + name: tensor}}) to spec.path.
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

spec = json.load(open(sys.argv[1]))
inputs = load_file(sys.argv[2])
out = {}
if spec['task'] == 'timm':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from timm_vit import mean_pooled_vit

    model = mean_pooled_vit(**spec['model'])
    state = load_file(spec['checkpoint'])
    for k in spec.get('extra', []):
        state.pop(k)
    model.load_state_dict(state, strict=True)
    model.eval()
    if 'pixels' in inputs:
        # uint8 [N, C, H, W] through the evaluation normalisation (x / 255 - mean) / std
        mean = torch.tensor(spec['mean']).view(1, -1, 1, 1)
        std = torch.tensor(spec['std']).view(1, -1, 1, 1)
        images = (inputs['pixels'].float() / 255 - mean) / std
    else:
        images = inputs['images'].float()
    logits = model(images)
    out['logits'] = logits.detach()
    out['probs'] = logits.detach().softmax(-1)
    if 'labels' in inputs:
        F.cross_entropy(logits, inputs['labels'].long()).backward()
        for name, p in model.named_parameters():
            out['grad:' + name] = p.grad
elif spec['task'] == 'save_pth':
    sd = {'module.' + k: v for k, v in inputs.items()}
    torch.save({'epoch': 3, 'arch': 'vit_small', 'state_dict': sd}, spec['path'])
    out['ok'] = torch.ones(1)
else:
    raise SystemExit('unknown task %s' % spec['task'])
save_file({k: v.detach().clone().contiguous() for k, v in out.items()}, sys.argv[3])
