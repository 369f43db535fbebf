# Cascade Mask R-CNN + FPN with MambaOut-Small, 3x multi-scale on COCO 2017
# (the recipe of mambaout_tiny_3x_ms.py).
_base_ = './cascade_mask_rcnn_mambaout_tiny_3x_ms.py'

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.6,  # ConvNeXt-S's in mmdet's 3x recipes
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
