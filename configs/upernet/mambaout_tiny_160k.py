# UperNet (+ auxiliary FCN head on stage 3) with MambaOut-Tiny, 160k iterations on ADE20K,
# 512x512 crops (paper Table 3). Setup per the paper and the authors (official repo issue #251):
# based on the Swin configs, a LayerNorm on each stage output (built into MambaOutBackbone),
# AdamW lr 1e-4 for every size, no layer-wise lr decay, batch 16 (4 GPUs x 4), FP16.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mambaout_mm'], allow_failed_imports=False)

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth'

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MambaOutBackbone',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,  # authors: 0.3 (T), 0.3 or 0.4 (S), 0.6 (B)
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 576], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

# 4 GPUs x 4 = 16; --auto-scale-lr keeps lr 1e-4 per 16 images where the total batch differs
# (8 GPUs x 2 and 16 x 1 keep 16 and need it not).
train_dataloader = dict(batch_size=4, num_workers=4)
auto_scale_lr = dict(enable=False, base_batch_size=16)
# 10 checkpoints of 160k iterations with AdamW states: keep the last 3
default_hooks = dict(checkpoint=dict(max_keep_ckpts=3))

# AdamW lr 1e-4 (the authors, all sizes), no layer-wise decay, no decay on norms and biases.
# Weight decay is not in the paper: 0.01 is the value of the Swin UperNet configs the authors
# say they started from.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]
