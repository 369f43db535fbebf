# Cascade Mask R-CNN 3x multi-scale on COCO with Swin-S (the recipe of swin_tiny_3x_ms.py).
_base_ = './swin_tiny_3x_ms.py'

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa
model = dict(backbone=dict(depths=[2, 2, 18, 2], init_cfg=dict(checkpoint=pretrained)))
