# MambaOut-Femto UperNet trained from scratch on the generated ADE20K-layout shapes dataset
# (python tools/make_shapes.py ade data/ade_shapes), sized for a 2-core CPU in minutes.
# Everything not overridden here is the Table 3 setup (mambaout_tiny_160k.py).
_base_ = './mambaout_tiny_160k.py'

data_root = 'data/ade_shapes'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step); label 0 of
# the annotations is "other" and is ignored (reduce_zero_label), as in ADE20K.
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[[220, 20, 60], [0, 130, 230], [250, 170, 30], [60, 180, 75]])
crop_size = (128, 128)
scale = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
# Shapes cover a few percent of the pixels and the rest ("other") is ignored: average the loss
# over the labelled pixels only, or its gradient shrinks with the shapes' share of the image.
loss = dict(type='CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(in_channels=[48, 96, 192, 288], channels=64, num_classes=4,
                     norm_cfg=norm_cfg, loss_decode=dict(**loss, loss_weight=1.0)),
    auxiliary_head=dict(in_channels=192, channels=32, num_classes=4, norm_cfg=norm_cfg,
                        loss_decode=dict(**loss, loss_weight=0.4)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')]]),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(batch_size=8, num_workers=2,
                        dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=2,
                      dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch on a CPU: fp32, a higher lr, a short schedule.
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=50, end=max_iters),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=200, max_keep_ckpts=2))
