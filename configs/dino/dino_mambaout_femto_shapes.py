# MambaOut-Femto DINO-4scale from scratch on the generated shapes dataset
# (python tools/make_shapes.py coco data/coco_shapes), sized for tests on a CPU: a few iterations
# train and evaluate (box AP) in tens of seconds. It checks that the DINO configs run end to
# end (train, test, demo, DDP, the deformable attention's PyTorch form on a CPU); it is not a
# recipe that converges in that time. Everything not overridden here is the Tiny config's.
_base_ = './dino_mambaout_tiny_4scale_12e.py'

data_root = 'data/coco_shapes/'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step).
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)])
image_scale = (192, 128)

# The transformer keeps its width, 256: mmdet 3.3's DINO decoder encodes reference boxes in
# 4 x 128 sine features (coordinate_to_encoding's default) whatever embed_dims is.
model = dict(
    num_queries=50,  # 1-4 objects an image (900 in the recipe)
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[96, 192, 288]),
    encoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    decoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    bbox_head=dict(num_classes=4),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=50))

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
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
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
        ['image_scale', 'model.num_queries', 'model.encoder.num_layers',
         'model.encoder.layer_cfg.ffn_cfg.feedforward_channels', 'model.decoder.num_layers',
         'model.decoder.layer_cfg.ffn_cfg.feedforward_channels',
         'model.dn_cfg.group_cfg.num_dn_queries', 'model.test_cfg.max_per_img'],
        'a femto-sized DINO that trains in seconds on a CPU'),
    **dict.fromkeys(
        ['max_epochs', 'train_cfg', 'param_scheduler', 'randomness', 'default_hooks'],
        'a schedule of a few epochs for the tests, seeded'),
}
