# Cascade Mask R-CNN + FPN with MambaOut-Tiny, 3x multi-scale on COCO 2017 (not in the paper):
# mmdet's ConvNeXt-T Cascade recipe as it stands (4conv1fc heads with GIoU, 36 epochs, multi-scale
# resize/crop, FP16, AdamW lr 2e-4, batch 16 as 8 GPUs x 2), with our backbone and without
# layer-wise lr decay, as the MambaOut authors train (the recipe's decay of 0.7 over 6 layers:
#   --cfg-options optim_wrapper.constructor=MambaOutLearningRateDecay
#     optim_wrapper.paramwise_cfg.decay_rate=0.7 optim_wrapper.paramwise_cfg.decay_type=layer_wise
#     optim_wrapper.paramwise_cfg.num_layers=6).
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa: E501
custom_imports = dict(imports=['mambaout_mm'], allow_failed_imports=False)

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOutBackbone',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,  # the ConvNeXt-T recipe's
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))

# What differs from the toolbox config above (tests/test_head_configs.py fails on any other
# difference, and on a listed one that is not there), each with its reason.
differences_from_base = {
    'model.backbone': 'MambaOut instead of ConvNeXt-T: ImageNet-1k weights of the official '
                      'release, drop path per size (ConvNeXt-T/S rates)',
    'model.neck.in_channels': "the channels of MambaOut's four stages",
    'pretrained': 'the URL of the official ImageNet-1k weights',
    'optim_wrapper.constructor': 'no layer-wise lr decay, as the MambaOut authors train '
                                 '(official repo issue #251)',
    'optim_wrapper.paramwise_cfg': 'the same; no weight decay on norms and biases instead',
    'optim_wrapper.loss_scale': "'dynamic', AmpOptimWrapper's default, written out",
    'default_hooks.checkpoint.max_keep_ckpts': 'keep 3 checkpoints, as our 1x configs',
}
