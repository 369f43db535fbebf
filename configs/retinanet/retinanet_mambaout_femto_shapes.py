# MambaOut-Femto RetinaNet from scratch on the generated shapes dataset
# (python tools/make_shapes.py coco data/coco_shapes), sized for tests on a CPU: a few iterations
# train and evaluate (box AP) in tens of seconds. It checks that the RetinaNet configs run end
# to end (train, test, demo, DDP); it is not a recipe that converges in that time. Everything
# not overridden here is the Tiny config's.
_base_ = './retinanet_mambaout_tiny_1x.py'

data_root = 'data/coco_shapes/'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step).
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)])
image_scale = (192, 128)
width = 64  # FPN and head channels (256 in the recipe)

model = dict(
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[96, 192, 288], out_channels=width),
    bbox_head=dict(num_classes=4, in_channels=width, feat_channels=width, stacked_convs=2),
    test_cfg=dict(nms_pre=200, max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
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

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs - 1], gamma=0.1)]
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=2, max_keep_ckpts=2))

differences_from_base = {
    **dict.fromkeys(
        ['data_root', 'metainfo', 'train_pipeline', 'test_pipeline', 'train_dataloader',
         'val_dataloader', 'test_dataloader', 'val_evaluator.ann_file',
         'test_evaluator.ann_file', 'model.bbox_head.num_classes'],
        'the generated shapes (4 classes, images resized to 192x128) instead of COCO'),
    **dict.fromkeys(
        ['image_scale', 'width', 'model.neck.out_channels', 'model.bbox_head.in_channels',
         'model.bbox_head.feat_channels', 'model.bbox_head.stacked_convs',
         'model.test_cfg.nms_pre', 'model.test_cfg.max_per_img'],
        'a femto-sized RetinaNet that trains in seconds on a CPU'),
    **dict.fromkeys(
        ['max_epochs', 'train_cfg', 'param_scheduler', 'randomness', 'default_hooks'],
        'a schedule of a few epochs for the tests, seeded'),
}
