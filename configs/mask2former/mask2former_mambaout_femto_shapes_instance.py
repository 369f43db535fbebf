# MambaOut-Femto Mask2Former trained from scratch on the generated COCO-layout shapes dataset
# (python tools/make_shapes.py coco data/coco_shapes --num-train 400), instance segmentation sized
# for a 2-core CPU: 16 queries, a 64-channel head with 2 pixel-decoder and 3 decoder layers,
# jittering from 1x to 2x with 192x256 crops.
# Everything not overridden here is mask2former_mambaout_tiny_50e_coco_instance.py (mmdet's
# Swin-T recipe).
# On a CPU mmcv's MultiScaleDeformableAttention runs its PyTorch form (grid_sample per level):
# mmcv 2.1.0 has CUDA/MLU kernels only.
_base_ = './mask2former_mambaout_tiny_50e_coco_instance.py'

data_root = 'data/coco_shapes/'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step).
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)])
num_classes = 4
# w x h: the generated images' size, the crop (1024x1024 in the recipe) and the test scale
# (1333x800 in the recipe); BatchFixedSizePad takes h x w
image_size = (256, 192)
width = 64  # the head's channels (256 in the recipe); 8 heads of 8
num_queries = 16

model = dict(
    data_preprocessor=dict(batch_augments=[dict(
        type='BatchFixedSizePad', size=image_size[::-1], img_pad_value=0, pad_mask=True,
        mask_pad_value=0, pad_seg=False)]),
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    panoptic_head=dict(
        in_channels=[48, 96, 192, 288],
        feat_channels=width,
        out_channels=width,
        num_things_classes=num_classes,
        num_queries=num_queries,
        pixel_decoder=dict(encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=width),
            ffn_cfg=dict(embed_dims=width, feedforward_channels=4 * width))),
            positional_encoding=dict(num_feats=width // 2)),
        positional_encoding=dict(num_feats=width // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=width),
            cross_attn_cfg=dict(embed_dims=width),
            ffn_cfg=dict(embed_dims=width, feedforward_channels=4 * width))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    # points sampled per mask for the matcher and the mask losses (12544 in the recipe)
    train_cfg=dict(num_points=4096),
    test_cfg=dict(max_per_image=20))

# The recipe's large-scale jittering from 1x (the recipe: 0.1x): no padding. From scratch, the
# stem's LayerNorms see padding as channels of one value (its conv's zero bias), normalise
# nothing but eps and send gradients of 1e11 back: clipped, they leave the rest of the model
# without an update.
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(1.0, 2.0), resize_type='Resize',
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch on a CPU: a higher lr, clipping at 1 (0.01 holds a fine-tuned model back, not one
# learning from nothing), a short schedule.
max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters, dynamic_intervals=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=40, end=max_iters,
         T_max=max_iters - 40, eta_min=1e-5),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=1.0))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=200, max_keep_ckpts=2))

differences_from_base = {
    **dict.fromkeys(
        ['data_root', 'metainfo', 'num_classes', 'image_size', 'model.data_preprocessor',
         'train_pipeline', 'test_pipeline', 'train_dataloader', 'val_dataloader',
         'test_dataloader', 'val_evaluator.ann_file', 'test_evaluator.ann_file',
         'model.panoptic_head.num_things_classes', 'model.panoptic_fusion_head',
         'model.panoptic_head.loss_cls.class_weight'],
        'the generated shapes (4 classes, 256x192 images) instead of COCO, jitter from 1x'),
    **dict.fromkeys(
        ['width', 'num_queries', 'model.panoptic_head.feat_channels',
         'model.panoptic_head.out_channels', 'model.panoptic_head.num_queries',
         'model.panoptic_head.pixel_decoder', 'model.panoptic_head.positional_encoding',
         'model.panoptic_head.transformer_decoder', 'model.train_cfg.num_points',
         'model.test_cfg.max_per_image'],
        'a femto-sized Mask2Former that trains in seconds on a CPU'),
    **dict.fromkeys(
        ['max_iters', 'train_cfg', 'param_scheduler', 'optim_wrapper.optimizer.lr',
         'optim_wrapper.clip_grad.max_norm', 'randomness', 'default_hooks'],
        'from scratch: a short schedule, a higher lr, looser clipping (see above), seeded'),
}
