# Mask2Former with MambaOut-Base, COCO 2017 panoptic segmentation, 50 epochs (not in the paper):
# mask2former_mambaout_tiny_50e_coco_panoptic.py (mmdet's Swin recipe) with the Base backbone.
# Small's config: Base has its depths, so its norms' keys
_base_ = './mask2former_mambaout_small_50e_coco_panoptic.py'

pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.6,  # the authors' Base rate
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[128, 256, 512, 768]))
