# MambaOut-Femto Mask2Former trained from scratch on the generated ADE20K-layout shapes dataset
# (python tools/make_shapes.py ade data/ade_shapes), semantic segmentation sized for a 2-core CPU:
# 16 queries, a 64-channel head with 2 pixel-decoder and 3 decoder layers, 128x128 crops.
# Everything not overridden here is mask2former_mambaout_tiny_160k_ade20k.py (mmseg's Swin-T
# recipe).
# On a CPU mmcv's MultiScaleDeformableAttention runs its PyTorch form (grid_sample per level):
# mmcv 2.1.0 has CUDA/MLU kernels only.
_base_ = './mask2former_mambaout_tiny_160k_ade20k.py'

data_root = 'data/ade_shapes'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step); label 0 of
# the annotations is "other" and is ignored (reduce_zero_label), as in ADE20K.
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[[220, 20, 60], [0, 130, 230], [250, 170, 30], [60, 180, 75]])
num_classes = 4
crop_size = (128, 128)
width = 64  # the head's channels (256 in the recipe); 8 heads of 8
num_queries = 16

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(
        in_channels=[48, 96, 192, 288],
        feat_channels=width,
        out_channels=width,
        num_classes=num_classes,
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
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        # points sampled per mask for the matcher and the mask losses (12544 in the recipe)
        train_cfg=dict(num_points=4096)))

# The recipe's pipeline at a quarter of its scale, from 1x the crop (the recipe: 0.5x): no padding.
# From scratch, the stem's LayerNorms see padding as channels of one value (its conv's zero
# bias), normalise nothing but eps and send gradients of 1e11 back: clipped, they leave the rest
# of the model without an update.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomChoiceResize', scales=[int(128 * x * 0.1) for x in range(10, 21)],
         resize_type='ResizeShortestEdge', max_size=512),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(batch_size=4, num_workers=2,
                        dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=2,
                      dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch on a CPU: a higher lr, clipping at 1 (0.01 holds a fine-tuned model back, not one
# learning from nothing), a short schedule.
max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=40),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=40, end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=1.0))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=200, max_keep_ckpts=2, save_best=None))

differences_from_base = {
    **dict.fromkeys(
        ['data_root', 'metainfo', 'dataset', 'num_classes', 'crop_size',
         'model.data_preprocessor.size', 'train_pipeline', 'test_pipeline', 'train_dataloader',
         'val_dataloader', 'test_dataloader', 'model.decode_head.num_classes',
         'model.decode_head.loss_cls.class_weight'],
        'the generated shapes (4 classes, 128x128 images) instead of ADE20K, crops from 1x'),
    **dict.fromkeys(
        ['width', 'num_queries', 'model.decode_head.feat_channels',
         'model.decode_head.out_channels', 'model.decode_head.num_queries',
         'model.decode_head.pixel_decoder', 'model.decode_head.positional_encoding',
         'model.decode_head.transformer_decoder', 'model.decode_head.train_cfg.num_points'],
        'a femto-sized Mask2Former that trains in seconds on a CPU'),
    **dict.fromkeys(
        ['max_iters', 'train_cfg', 'param_scheduler', 'optim_wrapper.optimizer.lr',
         'optim_wrapper.clip_grad.max_norm', 'randomness', 'default_hooks'],
        'from scratch: a short schedule, a higher lr, looser clipping (see above), seeded'),
}
