"""Oracle for the fine-tuning augmentations: timm's own Mixup / mixup_target,
SoftTargetCrossEntropy and RandAugment ops (timm/data/auto_augment.py on PIL).

`import timm` pulls in torchvision (timm.layers imports torchvision.ops), and
there is no CPU torchvision for this torch; the three timm files used here
import only torch, numpy and PIL, so they are loaded by file path without
running timm/__init__.py (no torchvision stub needed).

usage: timm_aug_oracle.py spec.json in.safetensors out.safetensors
"""
import importlib.util
import json
import os
import random
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def timm_file(rel, name):
    root = os.path.dirname(importlib.util.find_spec('timm').origin)
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mixup(spec, t):
    m = timm_file('data/mixup.py', 'timm_mixup')
    mix = m.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch',
                  label_smoothing=spec['smoothing'], num_classes=spec['numClasses'])
    mix._params_per_batch = lambda: (spec['lam'], spec['cutmix'])
    centre = iter([spec.get('cy', 0), spec.get('cx', 0)])
    np.random.randint = lambda lo, hi, size=None: next(centre)  # rand_bbox draws cy then cx
    x, target = mix(t['x'].clone(), t['labels'])
    return {'x': x.contiguous(), 'target': target.contiguous()}


def soft_ce(spec, t):
    ce = timm_file('loss/cross_entropy.py', 'timm_ce')
    logits = t['logits'].clone().requires_grad_(True)
    loss = ce.SoftTargetCrossEntropy()(logits, t['targets'])
    loss.backward()
    return {'loss': loss.detach().reshape(1), 'grad': logits.grad}


def aug_ops(spec, t):
    """Each op in spec['names'] on every image at its level (spec['levels'][i]) and sign coin (spec['negate'][i])."""
    aa = timm_file('data/auto_augment.py', 'timm_auto_augment')
    from PIL import Image
    imgs = t['images'].numpy()  # uint8 [B, C, H, W]
    out = {}
    for name in spec['names']:
        level_fn = aa.LEVEL_TO_ARG[name]
        outs, args = [], []
        for i, img in enumerate(imgs):
            # _randomly_negate negates when random.random() > 0.5
            coin = 0.9 if spec['negate'][i] else 0.1
            random.random = lambda: coin
            level_args = level_fn(spec['levels'][i], dict(aa._HPARAMS_DEFAULT)) if level_fn is not None else ()
            args.append(float(level_args[0]) if level_args else 0.0)
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            fill = (128,) * 3 if img.shape[0] == 3 else 128
            res = np.asarray(aa.NAME_TO_OP[name](pil, *level_args, fillcolor=fill, resample=Image.BILINEAR))
            outs.append(res[None] if res.ndim == 2 else res.transpose(2, 0, 1))
        out['images.' + name] = torch.from_numpy(np.stack(outs)).contiguous()
        out['args.' + name] = torch.tensor(args, dtype=torch.float64)
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    t = load_file(sys.argv[2])
    out = {'mixup': mixup, 'soft_ce': soft_ce, 'aug_ops': aug_ops}[spec['mode']](spec, t)
    save_file(out, sys.argv[3])


if __name__ == '__main__':
    main()
