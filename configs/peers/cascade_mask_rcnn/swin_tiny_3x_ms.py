# Cascade Mask R-CNN 3x multi-scale on COCO with Swin-T: mmdet's ConvNeXt-T Cascade recipe (Swin's
# own: 4conv1fc GIoU heads, multi-scale crop, 36 epochs), with the backbone and optimizer of mmdet's
# Swin-T configs (AdamW lr 1e-4, no weight decay on norms and position tables; no layer-wise decay).
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True, type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4, qkv_bias=True, qk_scale=None,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0.2, patch_norm=True,
        out_indices=(0, 1, 2, 3), with_cp=False, convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)}),
    optimizer=dict(lr=0.0001))
