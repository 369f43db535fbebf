# Cascade Mask R-CNN 3x multi-scale on COCO with Swin-B (the recipe of swin_tiny_3x_ms.py).
_base_ = './swin_tiny_3x_ms.py'

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth'  # noqa
model = dict(backbone=dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                           init_cfg=dict(checkpoint=pretrained)),
             neck=dict(in_channels=[128, 256, 512, 1024]))
