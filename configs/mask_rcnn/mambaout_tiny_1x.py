# Mask R-CNN + FPN with MambaOut-Tiny, 1x schedule on COCO 2017 (paper Table 2).
# Paper setup: ImageNet-pretrained backbone, 12 epochs, shorter side 800 / longer <= 1333, AdamW
# lr 1e-4, total batch 16 (4 GPUs x 4 images), FP16.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
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
        # The authors published no detection drop-path rate. 0.2/0.3/0.4 (T/S/B) follow the
        # Mask R-CNN 1x practice of Swin and VMamba for models of these sizes, below the
        # segmentation rates the authors gave (0.3/0.3/0.6): 12 epochs regularise less than 160k
        # iterations need. Override with --cfg-options model.backbone.drop_path_rate=...
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

# 4 GPUs x 4 images = 16; --auto-scale-lr keeps lr 1e-4 per 16 images where the total batch
# differs (8 GPUs x 2 and 16 x 1 keep 16 and need it not).
train_dataloader = dict(batch_size=4, num_workers=4)
auto_scale_lr = dict(enable=False, base_batch_size=16)
# a checkpoint per epoch with AdamW states: keep the last 3
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]

# AdamW, no weight decay on norms and biases, FP16 with a dynamic loss scale.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
