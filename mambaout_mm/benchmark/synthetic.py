"""A config's detector or segmentor fed seeded synthetic annotated images (for the benchmark and
the FP16 tools)."""
from __future__ import annotations

import torch
from torch import nn

from .precision import DTYPES, autocast


class ConfigModel(nn.Module):
    """The detector or segmentor a config builds, fed synthetic annotated images."""

    def __init__(self, config: str) -> None:
        super().__init__()
        from ..utils.config import build_model, load_config, toolbox
        cfg = load_config(config)
        self.scope = toolbox(cfg)
        self.model = build_model(cfg)
        # the task's classes (the RPN has one, the box, mask and decode heads have all)
        self.num_classes = max(m.num_classes for m in self.model.modules()
                               if isinstance(getattr(m, 'num_classes', None), int))

    def to(self, *args, **kwargs) -> ConfigModel:
        """Through mmengine's ``BaseModel.to``, which also tells the data preprocessor its device
        (``nn.Module.to`` moves the tensors alone)."""
        self.model.to(*args, **kwargs)
        return self

    def batch(self, shape: list[int], training: bool) -> dict:
        """Seeded random images with boxes and masks (detection) or label maps, preprocessed."""
        n, c, h, w = shape
        if self.scope == 'mmdet':
            from mmdet.testing import demo_mm_inputs
            data = demo_mm_inputs(n, (c, h, w), num_items=[8] * n,
                                  num_classes=self.num_classes, with_mask=True)
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            gen = torch.Generator().manual_seed(0)
            data = dict(inputs=[], data_samples=[])
            for _ in range(n):
                data['inputs'].append(torch.randint(0, 256, (c, h, w), dtype=torch.uint8,
                                                    generator=gen))
                sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
                sample.gt_sem_seg = PixelData(
                    data=torch.randint(0, self.num_classes, (1, h, w), generator=gen))
                data['data_samples'].append(sample)
        device = next(self.model.parameters()).device
        data['inputs'] = [x.to(device) for x in data['inputs']]
        return self.model.data_preprocessor(data, training)

    def autocast(self, device: str, dtype: str):
        """Mixed precision as training uses it: on a CPU bf16 only where mmcv's ops allow."""
        if device == 'cpu' and dtype != 'fp32':
            from ..engine.amp import AUTOCAST_MODULES, autocast_submodules
            return autocast_submodules(self.model, AUTOCAST_MODULES[self.scope], DTYPES[dtype])
        return autocast(device, dtype)
