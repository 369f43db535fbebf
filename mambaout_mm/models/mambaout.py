"""MambaOut: its variants, its blocks, the trunk, and the image classifier (official names).

The module tree (``downsample_layers``, ``stages``, ``norm``, ``head``) matches the official
repository (https://github.com/yuweihao/MambaOut), so its ImageNet checkpoints load with
``strict=True``. The timm ``*_rw`` variants are expressed in the same tree (see ``ARCH_SETTINGS``);
their timm checkpoints load through :mod:`mambaout_mm.weights.checkpoint`.

All feature tensors inside the trunk are channels-last (N, H, W, C), as in the official code.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..utils.errors import ConfigError
from . import backends

#: Architecture settings of every variant; the one table the project reads them from.
#: Keys missing from an entry take the defaults in ``ARCH_DEFAULTS``. ``release`` says whose
#: weights the variant has: the authors' (``official``, ``mambaout_{name}.pth``) or timm's;
#: ``in_timm=False`` would mark a variant timm has no model for (none today).
ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    # official variants (paper Table 4)
    'femto': dict(depths=(3, 3, 9, 3), dims=(48, 96, 192, 288), release='official'),
    'kobe': dict(depths=(3, 3, 15, 3), dims=(48, 96, 192, 288), release='official'),
    'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 576), release='official'),
    'small': dict(depths=(3, 4, 27, 3), dims=(96, 192, 384, 576), release='official'),
    'base': dict(depths=(3, 4, 27, 3), dims=(128, 256, 512, 768), release='official'),
    # timm's variants ("rw"): no stem mid-norm, norm-first downsampling, layer scale,
    # head without its mid-norm
    'small_rw': dict(depths=(3, 4, 27, 3), dims=(96, 192, 384, 576),
                     stem_mid_norm=False, downsample='norm_conv', ls_init_value=1e-6,
                     head_mid_norm=False, release='timm'),
    'base_short_rw': dict(depths=(3, 3, 25, 3), dims=(128, 256, 512, 768),
                          expansion_ratio=3.0, conv_ratio=1.25,
                          stem_mid_norm=False, downsample='norm_conv', ls_init_value=1e-6,
                          head_mid_norm=False, release='timm'),
    'base_tall_rw': dict(depths=(3, 4, 30, 3), dims=(128, 256, 512, 768),
                         expansion_ratio=2.5, conv_ratio=1.25,
                         stem_mid_norm=False, downsample='norm_conv', ls_init_value=1e-6,
                         head_mid_norm=False, release='timm'),
    'base_wide_rw': dict(depths=(3, 4, 27, 3), dims=(128, 256, 512, 768),
                         expansion_ratio=3.0, conv_ratio=1.5, act='silu',
                         stem_mid_norm=False, downsample='norm_conv', ls_init_value=1e-6,
                         head_mid_norm=False, release='timm'),
    'base_plus_rw': dict(depths=(3, 4, 30, 3), dims=(128, 256, 512, 768),
                         expansion_ratio=3.0, conv_ratio=1.5, act='silu',
                         stem_mid_norm=False, downsample='norm_conv', ls_init_value=1e-6,
                         head_mid_norm=False, release='timm'),
}

ARCH_DEFAULTS: dict[str, Any] = dict(
    expansion_ratio=8 / 3,   # hidden = int(expansion_ratio * dim)
    conv_ratio=1.0,          # share of the channels that go through the depthwise conv
    kernel_size=7,
    act='gelu',              # activation of the stem and the gates (the head uses GELU)
    stem_mid_norm=True,
    downsample='conv_norm',  # 'conv_norm' (official) or 'norm_conv' (timm rw)
    ls_init_value=None,      # layer scale init; None = no layer scale
    head_mid_norm=True,
)

#: What an ``ARCH_SETTINGS`` entry says about a variant besides its architecture.
VARIANT_FACTS = ('release', 'in_timm')

_ACTIVATIONS = {'gelu': nn.GELU, 'silu': nn.SiLU}


def variants(release: str | None = None, in_timm: bool | None = None) -> tuple[str, ...]:
    """Variant names in table order, those of one ``release`` and/or timm's presence."""
    return tuple(name for name, s in ARCH_SETTINGS.items()
                 if release in (None, s['release'])
                 and in_timm in (None, s.get('in_timm', True)))


def resolve_arch(arch: str | Mapping[str, Any]) -> dict[str, Any]:
    """Complete settings for a variant name or a dict of settings (``depths`` and ``dims``)."""
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise ConfigError(f'Unknown MambaOut variant {arch!r}; '
                           f'choose one of {sorted(ARCH_SETTINGS)} or pass a dict of settings.')
        arch = {k: v for k, v in ARCH_SETTINGS[arch].items() if k not in VARIANT_FACTS}
    missing = {'depths', 'dims'} - set(arch)
    if missing:
        raise ConfigError(f'A custom MambaOut arch needs {sorted(missing)}; got {dict(arch)}.')
    unknown = set(arch) - {'depths', 'dims'} - set(ARCH_DEFAULTS)
    if unknown:
        raise ConfigError(f'Unknown MambaOut arch settings {sorted(unknown)}; '
                         f'valid: depths, dims, {", ".join(ARCH_DEFAULTS)}.')
    settings = {**ARCH_DEFAULTS, **arch}
    if len(settings['depths']) != len(settings['dims']):
        raise ConfigError(f'depths {settings["depths"]} and dims {settings["dims"]} differ in '
                         'length.')
    if settings['act'] not in _ACTIVATIONS:
        raise ConfigError(f'act must be one of {sorted(_ACTIVATIONS)}, got {settings["act"]!r}.')
    if settings['downsample'] not in ('conv_norm', 'norm_conv'):
        raise ConfigError(f"downsample must be 'conv_norm' or 'norm_conv', "
                         f"got {settings['downsample']!r}.")
    return settings


def layer_norm(dim: int) -> nn.LayerNorm:
    """The LayerNorm used everywhere in MambaOut (eps 1e-6, over the last dim)."""
    return nn.LayerNorm(dim, eps=1e-6)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or at rate 0)."""

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob:.3f}'


class LayerScale(nn.Module):
    """Learnable per-channel scale on channels-last tensors (timm rw variants)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class StemLayer(nn.Module):
    """Two 3x3 stride-2 convs: NCHW image -> NHWC features at stride 4. ``backend`` picks their
    implementation as it does the blocks' (:func:`mambaout_mm.models.backends.conv`)."""

    def __init__(self, in_chans: int, out_chans: int, mid_norm: bool = True,
                 act: str = 'gelu', backend: str = 'auto') -> None:
        super().__init__()
        self.backend = backends.check_choice(backend)
        self.conv1 = nn.Conv2d(in_chans, out_chans // 2, kernel_size=3, stride=2, padding=1)
        self.norm1 = layer_norm(out_chans // 2) if mid_norm else None
        self.act = _ACTIVATIONS[act]()
        self.conv2 = nn.Conv2d(out_chans // 2, out_chans, kernel_size=3, stride=2, padding=1)
        self.norm2 = layer_norm(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = backends.conv(self.conv1, x, self.backend)
        if self.norm1 is not None:
            x = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = backends.conv(self.conv2, self.act(x), self.backend)
        return self.norm2(x.permute(0, 2, 3, 1))


class DownsampleLayer(nn.Module):
    """3x3 stride-2 conv with a LayerNorm after it (official) or before it (timm rw); NHWC.
    ``backend`` picks the conv's implementation as it does the blocks'."""

    def __init__(self, in_chans: int, out_chans: int, norm_first: bool = False,
                 backend: str = 'auto') -> None:
        super().__init__()
        self.backend = backends.check_choice(backend)
        self.norm_first = norm_first
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=2, padding=1)
        self.norm = layer_norm(in_chans if norm_first else out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = self.norm(x)
        x = backends.conv(self.conv, x.permute(0, 3, 1, 2), self.backend).permute(0, 2, 3, 1)
        return x if self.norm_first else self.norm(x)


class GatedCNNBlock(nn.Module):
    """Gated CNN block (Dauphin et al. 2017) with a depthwise conv on part of the channels.

    ``fc1`` makes 2 * hidden channels, split into the gate ``g`` (hidden), an identity part ``i``
    and a conv part ``c`` (conv_ratio * dim); out = x + fc2(act(g) * cat(i, dwconv(c))).
    :meth:`mix_reference` is that token mixer; :mod:`mambaout_mm.models.backends` picks the
    implementation that computes it (``backend='auto'``, or one named there).
    """

    def __init__(self, dim: int, expansion_ratio: float = 8 / 3, kernel_size: int = 7,
                 conv_ratio: float = 1.0, act: str = 'gelu', ls_init_value: float | None = None,
                 drop_path: float = 0., backend: str = 'auto') -> None:
        super().__init__()
        hidden = int(expansion_ratio * dim)
        conv_chans = int(conv_ratio * dim)
        self.norm = layer_norm(dim)
        self.fc1 = nn.Linear(dim, hidden * 2)
        self.act_name = act
        self.act = _ACTIVATIONS[act]()
        self.split_indices = (hidden, hidden - conv_chans, conv_chans)
        self.conv = nn.Conv2d(conv_chans, conv_chans, kernel_size=kernel_size,
                              padding=kernel_size // 2, groups=conv_chans)
        self.fc2 = nn.Linear(hidden, dim)
        self.ls = LayerScale(dim, ls_init_value) if ls_init_value is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.backend = backends.check_choice(backend)

    def mix_reference(self, y: torch.Tensor) -> torch.Tensor:
        """The token mixer as written in the paper: fc2(act(g) * cat(i, dwconv(c)))."""
        g, i, c = torch.split(self.fc1(y), self.split_indices, dim=-1)
        c = self.conv(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(self.act(g) * torch.cat((i, c), dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        if self.ls is None and not (self.training and isinstance(self.drop_path, DropPath)):
            return backends.mix(self, y, shortcut=x)  # an implementation may fuse the addition
        out = backends.mix(self, y)
        if self.ls is not None:
            out = self.ls(out)
        return self.drop_path(out) + x


class MlpHead(nn.Module):
    """Classifier MLP after pooling and the final norm: fc1 -> GELU -> [norm] -> dropout -> fc2."""

    def __init__(self, dim: int, num_classes: int, mlp_ratio: float = 4, mid_norm: bool = True,
                 drop_rate: float = 0.) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.norm = layer_norm(hidden) if mid_norm else nn.Identity()
        self.head_dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.head_dropout(self.norm(self.act(self.fc1(x)))))


class MambaOutTrunk(nn.Module):
    """The stem, the downsampling layers and the stages of gated CNN blocks (official names).

    The classifier and the dense-prediction backbone are built on it. Keyword arguments it does
    not take go to the next class in the method resolution order (``BaseModule``'s ``init_cfg``
    for the backbone).

    Args:
        arch: variant name in ``ARCH_SETTINGS`` or a dict of settings.
        in_chans: input image channels.
        drop_path_rate: stochastic depth at the last block of the variant, ramped linearly over
            all its blocks.
        num_stages: build the first ``num_stages`` stages only (default: all).
        backend: implementation of the blocks' token mixer and of the stem's and downsampling
            layers' convs (see :mod:`mambaout_mm.models.backends`).
    """

    def __init__(self, arch: str | Mapping[str, Any] = 'tiny', in_chans: int = 3,
                 drop_path_rate: float = 0., num_stages: int | None = None, backend: str = 'auto',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.arch_settings = s = resolve_arch(arch)
        self.depths, self.dims = tuple(s['depths']), tuple(s['dims'])
        self.num_stages = len(self.depths) if num_stages is None else num_stages
        self.grad_checkpointing = False

        self.downsample_layers = nn.ModuleList([
            StemLayer(in_chans, self.dims[0], mid_norm=s['stem_mid_norm'], act=s['act'],
                      backend=backend)])
        for i in range(1, self.num_stages):
            self.downsample_layers.append(DownsampleLayer(
                self.dims[i - 1], self.dims[i], norm_first=s['downsample'] == 'norm_conv',
                backend=backend))

        rates = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(self.num_stages):
            start, dim = sum(self.depths[:i]), self.dims[i]
            self.stages.append(nn.Sequential(*[
                GatedCNNBlock(dim, expansion_ratio=s['expansion_ratio'],
                              kernel_size=s['kernel_size'], conv_ratio=s['conv_ratio'],
                              act=s['act'], ls_init_value=s['ls_init_value'],
                              drop_path=rates[start + j], backend=backend)
                for j in range(self.depths[i])]))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i``: its downsampling layer (the stem for ``i == 0``) and blocks; NHWC out."""
        x = self.downsample_layers[i](x)
        if self.grad_checkpointing and torch.is_grad_enabled():
            for block in self.stages[i]:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return self.stages[i](x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """NCHW image -> the NHWC output of every stage (strides 4, 8, 16, 32)."""
        features = []
        for i in range(self.num_stages):
            x = self.forward_stage(i, x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)


class MambaOut(MambaOutTrunk):
    """MambaOut image classifier: the trunk, global average pooling, a LayerNorm and an MLP head.

    Args:
        arch, in_chans, drop_path_rate, backend: as for :class:`MambaOutTrunk`.
        num_classes: classes of the head.
        head_dropout: dropout before the last linear layer of the head.
    """

    def __init__(self, arch: str | Mapping[str, Any] = 'tiny', in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.,
                 head_dropout: float = 0., backend: str = 'auto') -> None:
        super().__init__(arch=arch, in_chans=in_chans, drop_path_rate=drop_path_rate,
                         backend=backend)
        self.num_classes = num_classes
        self.norm = layer_norm(self.dims[-1])
        self.head = MlpHead(self.dims[-1], num_classes,
                            mid_norm=self.arch_settings['head_mid_norm'], drop_rate=head_dropout)
        self.head.apply(self._init_weights)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage NHWC features -> logits."""
        return self.head(self.norm(x.mean((1, 2))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])
