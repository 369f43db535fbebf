# Mask R-CNN + FPN with MambaOut-Small, 1x on COCO 2017 (paper Table 2: 65M params, 354G MACs).
_base_ = './mambaout_tiny_1x.py'

# Official ImageNet-1k weights: https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth
pretrained = 'checkpoints/mambaout_small.pth'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
