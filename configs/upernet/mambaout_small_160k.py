# UperNet with MambaOut-Small, 160k on ADE20K (paper Table 3: 76M params, 1032G MACs).
_base_ = './mambaout_tiny_160k.py'

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth'

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,  # the authors' alternative: 0.4
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
