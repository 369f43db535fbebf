"""What the benchmark can time: backbones by name (``SUBJECTS``) and configs, whole or as the
network ONNX export takes, in PyTorch or exported and run by a deployment backend
(:mod:`mambaout_deploy.backends`: ONNX Runtime, OpenVINO, any registered there)."""
from __future__ import annotations

import os
from functools import partial
from typing import Callable

import torch
from torch import nn

from ..models.mambaout import variants
from ..utils.errors import ConfigError
from .synthetic import ConfigModel

#: The official variants by the letter of their subject names (``mambaout_t`` is tiny)
SIZES = {name[0]: name for name in variants('official')}


class TimmFeatures(nn.Module):
    """A timm model returning its four stage outputs (NCHW), head pruned."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.prune_intermediate_layers(4, prune_norm=True, prune_head=True)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, intermediates_only=True)


def timm_mambaout(arch: str, like: nn.Module | None = None) -> nn.Module:
    """timm's MambaOut as a feature extractor, with the trunk weights of ``like`` if given."""
    import timm
    from timm.models.mambaout import checkpoint_filter_fn
    model = timm.create_model(f'mambaout_{arch}')
    if like is not None:
        trunk = {k: v for k, v in like.state_dict().items()
                 if k.startswith(('downsample_layers.', 'stages.'))}
        missing, unexpected = model.load_state_dict(checkpoint_filter_fn(trunk, model),
                                                    strict=False)
        assert not unexpected and all(k.startswith('head.') for k in missing), (missing,
                                                                                 unexpected)
    return TimmFeatures(model)


def mambaout_backbone(arch: str, **kwargs) -> nn.Module:
    from ..models.backbone import MambaOutBackbone
    return MambaOutBackbone(arch, **kwargs)


def deploy_backends() -> tuple[str, ...]:
    """The deployment package's registered backends, each a way to run an exported network."""
    from mambaout_deploy.backends import backends
    return tuple(backends())


class ExportedModule(nn.Module):
    """A network exported to ONNX (``onnx_export``) at the input ``shape``, fixed as the
    deployment's exports are (OpenVINO runs free sizes slower: docs/deploy.md), and run in
    fp32 by the deployment ``backend`` on the CPU with its default threads; inference only."""

    trains = False

    def __init__(self, model: nn.Module, backend: str, shape: list[int]) -> None:
        super().__init__()
        import tempfile

        from mambaout_deploy.backends import get_backend

        from ..deploy.onnx_export import export
        self.backend = backend
        self._folder = tempfile.TemporaryDirectory()  # kept: a backend may compile it again
        path = os.path.join(self._folder.name, 'network.onnx')
        export(model, tuple(shape), path)
        self.session = get_backend(backend).session(path, None, 'fp32')

    def forward(self, x: torch.Tensor) -> list:
        if x.device.type != 'cpu':
            raise ValueError(f'{self.backend} subjects run on the CPU only.')
        return self.session.run({'image': x.numpy()})


def exported_subject(name: str) -> tuple[str, str] | None:
    """``(backbone subject, backend)`` of a name such as ``mambaout_t_openvino``; else None."""
    base, _, backend = name.rpartition('_')
    return (base, backend) if backend in deploy_backends() and base in SUBJECTS else None


def _swin_t() -> nn.Module:
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                           window_size=7, drop_path_rate=0.0)


def _resnet50() -> nn.Module:
    from mmdet.models.backbones import ResNet
    return ResNet(depth=50, out_indices=(0, 1, 2, 3))


def _convnext_t() -> nn.Module:
    import timm
    return TimmFeatures(timm.create_model('convnext_tiny'))


#: name -> builder; ``timm_mambaout_*`` subjects copy the weights of the matching ours, as do
#: ``NAME_BACKEND`` ones (:func:`exported_subject`, ``mambaout_t_onnxruntime``: the subject
#: exported and run by a deployment backend, fp32 inference only).
SUBJECTS: dict[str, Callable[[], nn.Module]] = {
    'mambaout_t_cp': lambda: mambaout_backbone('tiny', with_cp=True),
    # the block's plain formula
    'mambaout_t_ref': lambda: mambaout_backbone('tiny', backend='reference'),
    'mambaout_t_compiled': lambda: torch.compile(mambaout_backbone('tiny')),
    'convnext_t': _convnext_t,
    'swin_t': _swin_t,
    'resnet50': _resnet50,
    **{f'mambaout_{letter}': partial(mambaout_backbone, arch) for letter, arch in SIZES.items()},
    **{f'timm_mambaout_{letter}': partial(timm_mambaout, arch) for letter, arch in SIZES.items()},
}


#: input of each kind of subject when none is given (the paper's sizes; UperNet's pooling module
#: needs two images per training batch on a CPU)
DEFAULT_SHAPES = {'backbone': [2, 3, 512, 512], 'mmdet': [1, 3, 800, 1280],
                  'mmseg': [2, 3, 512, 512]}


#: ``CONFIG.py`` runs the model as mmengine does (``predict``; ``loss`` and an update);
#: ``CONFIG.py:network`` the network ONNX export takes (``onnx_export.network``: a segmentor's
#: logits, a detector's dense maps) in PyTorch, ``CONFIG.py:BACKEND`` that network exported at the
#: benchmark's input size and run by a deployment backend; both inference only
def config_engines() -> tuple[str, ...]:
    return ('network', *deploy_backends())


def split_config(name: str) -> tuple[str, str | None]:
    """``(config, engine)`` of a subject name (:func:`config_engines`); engine ``None`` for the
    model as mmengine runs it."""
    head, sep, tail = name.rpartition(':')
    if sep and tail in config_engines() and head.endswith('.py'):
        return head, tail
    return name, None


def is_config(name: str) -> bool:
    return split_config(name)[0].endswith('.py')


class Network(nn.Module):
    """The exportable network of a config's model (``onnx_export.network``), inference only."""

    trains = False

    def __init__(self, config: str) -> None:
        super().__init__()
        from ..deploy.onnx_export import network
        self.network = network(ConfigModel(config).model, 'model').eval()

    def forward(self, x: torch.Tensor):
        return self.network(x)


def build_subjects(names: list[str], shape: list[int] | None = None) -> dict[str, nn.Module]:
    """Build the named subjects; timm's MambaOut and an exported backbone get the weights of our
    MambaOut of that size; exported subjects are exported at ``shape``."""
    unknown = [n for n in names if n not in SUBJECTS and not is_config(n)
               and not exported_subject(n)]
    if unknown:
        raise ConfigError(f'Unknown benchmark subjects {unknown}; choose from {sorted(SUBJECTS)} '
                          f'(NAME_BACKEND to run one exported by a backend of '
                          f'{deploy_backends()}) or give config files (*.py, or *.py:ENGINE for '
                          f'{config_engines()}).')
    torch.manual_seed(0)
    models = {}
    backends = deploy_backends()
    for name in names:
        config, engine = split_config(name)
        exported = exported_subject(name)
        if (engine in backends or exported) and shape is None:
            raise ValueError(f'{name} is exported at the input size: give a shape.')
        if engine in backends:
            pytorch = models.get(f'{config}:network')  # the same weights where it is a subject
            models[name] = ExportedModule(pytorch if pytorch is not None else Network(config),
                                          engine, shape)
        elif engine == 'network':
            models[name] = Network(config)
        elif is_config(name):
            models[name] = ConfigModel(name)
        elif name.startswith('timm_mambaout_'):
            ours = models.get(name[len('timm_'):]) or SUBJECTS[name[len('timm_'):]]()
            models[name] = timm_mambaout(SIZES[name.rsplit('_', 1)[1]], like=ours)
        elif exported:
            base, backend = exported
            ours = models.get(base)
            models[name] = ExportedModule(ours if ours is not None else SUBJECTS[base](), backend,
                                          shape)
        else:
            models[name] = SUBJECTS[name]()
    return models


def feature_agreement(ours: nn.Module, timm_features: TimmFeatures, x: torch.Tensor) -> float:
    """Largest absolute difference between the stage features (before our output norms)."""
    with torch.inference_mode():
        a = ours.eval().forward_features(x)
        b = timm_features.eval().model.forward_intermediates(x, intermediates_only=True,
                                                             output_fmt='NHWC')
    return max((u - v).abs().max().item() for u, v in zip(a, b))


def default_shape(names: list[str]) -> list[int]:
    """The detection size if a detector is among the subjects, else the segmentation crops."""
    from ..utils.config import load_config, toolbox
    scopes = {toolbox(load_config(split_config(n)[0])) if is_config(n) else 'backbone'
              for n in names}
    return DEFAULT_SHAPES['mmdet' if 'mmdet' in scopes else 'mmseg' if 'mmseg' in scopes
                          else 'backbone']


