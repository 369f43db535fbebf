# RetinaNet + FPN with MambaOut-Small, 1x on COCO 2017: the Tiny config's recipe (see there).
_base_ = './retinanet_mambaout_tiny_1x.py'

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
