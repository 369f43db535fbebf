# RetinaNet + FPN with MambaOut-Tiny, 1x on COCO 2017 (not in the paper): the one-stage baseline
# MetaFormer-family papers report (PoolFormer, PVT). mmdet's Swin-T RetinaNet recipe as it stands
# (12 epochs, steps at 8 and 11 after a 500-iteration warm-up, single-scale 1333x800 with flips,
# batch 16 as 8 GPUs x 2, fp32), with its wiring for a backbone whose outputs carry a norm: stages
# 1-3 (strides 8, 16, 32) into the FPN from its first input (start_level=0), two extra levels
# from the last input (P6, P7), as mmdet's swin README asks of one-stage detectors.
#
# The optimizer is not that config's: it inherits SGD lr 0.02 from mmdet's schedule_1x (its own
# `optimizer = dict(type='SGD', lr=0.01, ...)` is an mmdet 2.x key mmengine ignores). We use what
# the MetaFormer-family RetinaNet numbers were trained with: AdamW lr 1e-4, weight decay 1e-4
# (PoolFormer's detection/configs/retinanet_poolformer_s12_fpn_1x_coco.py, which follows PVT;
# mmdet's own PVT/PVTv2 RetinaNet configs the same), and the MambaOut authors' lr (issue #251).
# No layer-wise lr decay, as the authors train (issue #251); one line away, e.g. 0.9:
#   --cfg-options optim_wrapper.constructor=MambaOutLearningRateDecay
#     optim_wrapper.paramwise_cfg.decay_rate=0.9 optim_wrapper.paramwise_cfg.num_layers=6
# (num_layers: 6 for Tiny, 12 for Small and Base; see mambaout_mm/engine/optim.py).
_base_ = 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['mambaout_mm'], allow_failed_imports=False)

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOutBackbone',
        arch='tiny',
        out_indices=(1, 2, 3),
        # 12 epochs, as our Mask R-CNN 1x: 0.2/0.3/0.4 (T/S/B); Swin-T's RetinaNet uses 0.2
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 576]))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))

# a checkpoint per epoch with AdamW states: keep the last 3
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))

# What differs from the toolbox config above (tests/test_head_configs.py fails on any other
# difference, and on a listed one that is not there), each with its reason. Configs deriving from
# this one add their own entries (mmengine merges the dicts).
differences_from_base = {
    'model.backbone': 'MambaOut instead of Swin-T: ImageNet-1k weights of the official release, '
                      'the same stages 1-3, drop path per size (see above)',
    'model.neck.in_channels': 'the channels of MambaOut stages 1-3',
    'pretrained': 'the URL of the official ImageNet-1k weights',
    'optim_wrapper.optimizer': 'AdamW lr 1e-4, weight decay 1e-4, as PoolFormer (MetaFormer, '
                               "CVPR 2022) and PVT train RetinaNet, not schedule_1x's SGD",
    'default_hooks.checkpoint.max_keep_ckpts': 'keep 3 checkpoints, as our Mask R-CNN configs',
}
