# Cascade Mask R-CNN 3x multi-scale on COCO with ConvNeXt-B: mmdet's ConvNeXt-S recipe, ConvNeXt-B
# backbone (drop path 0.7 as in ConvNeXt's own configs for B).
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa

checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/convnext/downstream/convnext-base_3rdparty_32xb128-noema_in1k_20220301-2a0ee547.pth'  # noqa
model = dict(backbone=dict(arch='base', drop_path_rate=0.7,
                           init_cfg=dict(checkpoint=checkpoint_file)),
             neck=dict(in_channels=[128, 256, 512, 1024]))
