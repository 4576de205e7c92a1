# Oracle for layer-wise lr decay: BEiT's parameter groups (get_layer_id_for_vit
# with LayerDecayValueAssigner, get_parameter_groups of optim_factory.py),
# written from their published rules, over timm's mean-pooled ViT.
# argv: spec.json; prints JSON [{names, lr_scale, weight_decay}] in group order.
import json
import sys

sys.path.insert(0, __import__('os').path.dirname(__file__))
from timm_vit import mean_pooled_vit  # noqa: E402

spec = json.load(open(sys.argv[1]))
model = mean_pooled_vit(**spec['model'])
depth = spec['model']['depth']
decay, wd = spec['layer_decay'], spec['weight_decay']


def layer_id(name):
    if name in ('cls_token', 'mask_token', 'pos_embed'):
        return 0
    if name.startswith('patch_embed'):
        return 0
    if name.startswith('rel_pos_bias'):
        return depth + 1
    if name.startswith('blocks'):
        return int(name.split('.')[1]) + 1
    return depth + 1


scales = [decay ** (depth + 1 - i) for i in range(depth + 2)]
skip = model.no_weight_decay()
groups = {}
for name, p in model.named_parameters():
    if not p.requires_grad:
        continue
    if len(p.shape) == 1 or name.endswith('.bias') or name in skip:
        kind, this_wd = 'no_decay', 0.0
    else:
        kind, this_wd = 'decay', wd
    lid = layer_id(name)
    key = 'layer_%d_%s' % (lid, kind)
    if key not in groups:
        groups[key] = {'names': [], 'lr_scale': scales[lid], 'weight_decay': this_wd}
    groups[key]['names'].append(name)
print(json.dumps(list(groups.values())))
