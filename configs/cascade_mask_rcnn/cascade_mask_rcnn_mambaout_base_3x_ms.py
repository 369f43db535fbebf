# Cascade Mask R-CNN + FPN with MambaOut-Base, 3x multi-scale on COCO 2017
# (the recipe of mambaout_tiny_3x_ms.py).
_base_ = './cascade_mask_rcnn_mambaout_tiny_3x_ms.py'

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7,  # ConvNeXt-B's in ConvNeXt's own 3x COCO configs
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 768]))
