# RetinaNet + FPN with MambaOut-Base, 1x on COCO 2017: the Tiny config's recipe (see there).
_base_ = './retinanet_mambaout_tiny_1x.py'

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 768]))
