# UperNet with timm's MambaOut-Base+ (ImageNet-12k), 160k on ADE20K at 640x640 crops (not in the
# paper): mmseg's ImageNet-22k ConvNeXt-B recipe's crop, its data settings (ade20k_640x640.py: the
# pipelines below, a test checks they are mmseg's) and its sliding-window test (640, stride 426).
_base_ = './mambaout_base_plus_rw_in12k_160k.py'

crop_size = (640, 640)
scale = (2560, 640)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
