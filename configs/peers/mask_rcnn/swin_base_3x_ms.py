# Mask R-CNN 3x multi-scale on COCO with Swin-B: mmdet's Swin-S recipe, Swin-B backbone
# (mmdet's drop path 0.2 kept).
_base_ = 'mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py'

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth'  # noqa
model = dict(backbone=dict(embed_dims=128, num_heads=[4, 8, 16, 32],
                           init_cfg=dict(checkpoint=pretrained)),
             neck=dict(in_channels=[128, 256, 512, 1024]))
