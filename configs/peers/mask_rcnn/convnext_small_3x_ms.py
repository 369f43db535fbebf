# Mask R-CNN 3x multi-scale on COCO with ConvNeXt-S: mmdet's ConvNeXt-T recipe, ConvNeXt-S backbone
# (as mmdet's ConvNeXt-S Cascade config sets it).
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'

checkpoint_file = 'https://download.openmmlab.com/mmclassification/v0/convnext/downstream/convnext-small_3rdparty_32xb128-noema_in1k_20220301-303e75e3.pth'  # noqa
model = dict(backbone=dict(arch='small', drop_path_rate=0.6,
                           init_cfg=dict(checkpoint=checkpoint_file)))
