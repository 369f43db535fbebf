# DINO-4scale with MambaOut-Tiny, 12 epochs on COCO 2017 (not in the paper): mmdet's R50 DINO
# recipe as it stands, as TransNeXt's and InternImage's DINO configs start from it (900 queries,
# 6+6 layers; AdamW lr 1e-4, weight decay 1e-4, the backbone at 0.1x lr, gradients clipped at 0.1;
# the DETR multi-scale resize/crop; a step at epoch 11; batch 16 as 8 GPUs x 2; fp32).
# MambaOut gives stages 1-3 (strides 8, 16, 32) to the ChannelMapper, whose extra strided conv
# makes the 4th level (num_outs=4), as R50's stages 2-4 do there.
#
# Mixed precision: fp32, as every DINO config mmdet ships (its Swin-L config's `fp16 = dict(...)`
# is an mmdet 2.x key mmengine ignores). Under CUDA FP16 autocast mmcv's deformable attention
# casts its sampling locations to fp16 (mmcv 2.1.0, ms_deform_attn), mmdet's DINO reports NaN
# gradient norms under AMP (open-mmlab/mmdetection PR #10335, never merged), and the op has no
# bfloat16 kernel; docs/heads.md has what our FP16 emulation measured.
# On a CPU mmcv 2.1.0 has no deformable-attention kernel: MultiScaleDeformableAttention runs
# its PyTorch form (multi_scale_deformable_attn_pytorch, F.grid_sample) there.
#
# Layer-wise lr decay (InternImage-T's DINO: 0.9, no 0.1x backbone multiplier) is one line away:
#   --cfg-options optim_wrapper.constructor=MambaOutLearningRateDecay
#     optim_wrapper.paramwise_cfg.decay_rate=0.9 optim_wrapper.paramwise_cfg.num_layers=6
#     optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult=1.0
# (num_layers: 6 for Tiny, 12 for Small and Base; see mambaout_mm/engine/optim.py).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
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
        # 12 epochs, as our Mask R-CNN 1x: 0.2/0.3/0.4 (T/S/B); InternImage-T's DINO and mmdet's
        # Swin-L DINO use 0.2
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 576]))

# a checkpoint per epoch with AdamW states: keep the last 3
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))

# What differs from the toolbox config above (tests/test_head_configs.py fails on any other
# difference, and on a listed one that is not there), each with its reason. Configs deriving from
# this one add their own entries (mmengine merges the dicts).
differences_from_base = {
    'model.backbone': 'MambaOut instead of ResNet-50: ImageNet-1k weights of the official '
                      'release, stages 1-3, nothing frozen (LayerNorm backbones are not, as in '
                      "mmdet's Swin-L DINO), drop path per size (see above)",
    'model.neck.in_channels': 'the channels of MambaOut stages 1-3',
    'pretrained': 'the URL of the official ImageNet-1k weights',
    'default_hooks.checkpoint.max_keep_ckpts': 'keep 3 checkpoints, as our Mask R-CNN configs',
}
