# MambaOut-Femto Mask R-CNN trained from scratch on the generated shapes dataset
# (python tools/make_shapes.py coco data/coco_shapes --num-train 400), sized for a 2-core CPU in
# minutes.
# Everything not overridden here is the Table 2 setup (mambaout_tiny_1x.py).
_base_ = './mambaout_tiny_1x.py'

data_root = 'data/coco_shapes/'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step).
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)])
image_scale = (256, 192)
width = 64  # FPN and RoI-head channels (256 in Table 2)

model = dict(
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[48, 96, 192, 288], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        # sampling_ratio=2: a fixed 2x2 samples per RoIAlign bin (adaptive sampling made RoIAlign
        # a third of the CPU time of a training step).
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=4),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),  # 1-4 objects an image: 64 RoIs leave enough negatives
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch on a CPU: fp32, a higher lr (2e-3; batch 2 at this lr diverged), 8 epochs of the 400
# training images (800 iterations) with a cosine decay after one epoch of warm-up. Measured over
# seeds and CPUs, this converges where 12 epochs of 200 images with steps at 9 and 11 did not
# reliably (README, "The CPU quickstarts").
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, T_max=max_epochs - 1,
         eta_min=2e-5, convert_to_iter_based=True),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=2, max_keep_ckpts=2))
