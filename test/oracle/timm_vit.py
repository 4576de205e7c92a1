# Imports timm's VisionTransformer without torchvision. timm's package
# __init__ imports every model and its data pipeline, which import
# torchvision at module level; there is no CPU torchvision for torch 2.13, and
# the classifier needs none of it. When torchvision is missing, a meta-path
# finder serves an inert stand-in package for `torchvision` and its
# submodules (any attribute is an empty class), installed before timm loads.
# A real torchvision, where present, is used as is.
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types


class _Inert(type):
    def __getattr__(cls, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _Inert(name, (), {})


class _InertModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _Inert(name, (), {})


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == 'torchvision' or fullname.startswith('torchvision.'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _InertModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


# With torch from the system python3, timm may still live in the project's
# .libtorch/site, where scripts/ensure-oracle.js installs it.
if importlib.util.find_spec('timm') is None:
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '.libtorch', 'site'))

if importlib.util.find_spec('torchvision') is None:
    sys.meta_path.insert(0, _TorchvisionStandIn())

from timm.models.vision_transformer import VisionTransformer  # noqa: E402


def mean_pooled_vit(img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio=4.0, qkv_bias=True):
    """The fine-tuning classifier as timm builds it: no class token, mean pooling, fc_norm."""
    return VisionTransformer(
        img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
        global_pool='avg', class_token=False, fc_norm=True,
    )
