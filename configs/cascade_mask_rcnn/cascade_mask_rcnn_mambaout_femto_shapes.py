# MambaOut-Femto Cascade Mask R-CNN from scratch on the generated shapes dataset
# (python tools/make_shapes.py coco data/coco_shapes --num-train 400), sized for a 2-core CPU: the
# tests train it for a few iterations (train, test, demo, DDP); trained as the Mask R-CNN
# quickstart is (8 epochs of the 400 images, AdamW 2e-3, cosine decay), it gives the checkpoint
# the deployment benchmark scores its backends with. Everything not overridden here is the Tiny
# config's.
_base_ = './cascade_mask_rcnn_mambaout_tiny_3x_ms.py'

data_root = 'data/coco_shapes/'
# The class names of mambaout_mm.datasets.SHAPE_CLASSES (a test keeps them in step).
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 130, 230), (250, 170, 30), (60, 180, 75)])
image_scale = (256, 192)
width = 64  # FPN and RoI-head channels (256 in the recipe)
# BatchNorm in the heads: SyncBN needs a GPU in a distributed run, and the tests train in two
# CPU processes
head_norm = dict(type='BN', requires_grad=True)
stage_head = dict(
    type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=width,
    conv_out_channels=width, fc_out_channels=256, roi_feat_size=7, num_classes=4,
    reg_class_agnostic=False, reg_decoded_bbox=True, norm_cfg=head_norm,
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=10.0))

model = dict(
    backbone=dict(arch='femto', drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[48, 96, 192, 288], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        # sampling_ratio=2: a fixed 2x2 samples per RoIAlign bin, as the Mask R-CNN quickstart
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=width),
        # the recipe's three stages, each with its own coder's target_stds
        bbox_head=[
            dict(stage_head, bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                             target_stds=stds))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])],
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        # the recipe's three IoU thresholds; 64 RoIs an image (512 in the recipe): 1-4 objects
        # an image leave enough negatives, as in the Mask R-CNN quickstart
        rcnn=[dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                                 min_pos_iou=iou, match_low_quality=False, ignore_iof_thr=-1),
                   sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25,
                                neg_pos_ub=-1, add_gt_as_proposals=True),
                   mask_size=28, pos_weight=-1, debug=False)
              for iou in (0.5, 0.6, 0.7)]),
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

# the Mask R-CNN quickstart's schedule and optimizer (configs/mask_rcnn/*femto*), fp32
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
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=2, max_keep_ckpts=2))

# restated whole (_delete_): the Tiny config's list names its FP16 optimizer's loss scale
differences_from_base = {
    '_delete_': True,
    'model.backbone': 'MambaOut-Femto from scratch instead of ConvNeXt-T',
    'model.neck.in_channels': "the channels of MambaOut-Femto's four stages",
    'pretrained': "the URL of the official ImageNet-1k weights (the Tiny config's, unused)",
    **dict.fromkeys(
        ['data_root', 'metainfo', 'train_pipeline', 'test_pipeline', 'train_dataloader',
         'val_dataloader', 'test_dataloader', 'val_evaluator.ann_file',
         'test_evaluator.ann_file', 'model.roi_head.mask_head.num_classes'],
        'the generated shapes (4 classes, images resized to 256x192) instead of COCO'),
    **dict.fromkeys(
        ['image_scale', 'width', 'head_norm', 'stage_head', 'model.neck.out_channels',
         'model.rpn_head.in_channels', 'model.rpn_head.feat_channels',
         'model.roi_head.bbox_roi_extractor', 'model.roi_head.bbox_head',
         'model.roi_head.mask_roi_extractor', 'model.roi_head.mask_head.in_channels',
         'model.roi_head.mask_head.conv_out_channels', 'model.train_cfg.rpn_proposal',
         'model.train_cfg.rcnn',
         'model.test_cfg.rpn', 'model.test_cfg.rcnn.max_per_img'],
        'a femto-sized Cascade Mask R-CNN that trains on a CPU: 64 channels after the '
        'backbone, BatchNorm in the stage heads (SyncBN needs a GPU), fewer proposals and RoIs'),
    **dict.fromkeys(
        ['max_epochs', 'train_cfg', 'param_scheduler', 'optim_wrapper', 'randomness',
         'default_hooks'],
        "the Mask R-CNN quickstart's CPU schedule (8 epochs, AdamW 2e-3, cosine, fp32), seeded"),
}
