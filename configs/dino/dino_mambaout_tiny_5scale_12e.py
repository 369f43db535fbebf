# DINO-5scale with MambaOut-Tiny, 12 epochs on COCO 2017: the 4-scale config with all four stages
# (strides 4-32) and the ChannelMapper's extra level (stride 64), as mmdet's Swin-L DINO-5scale
# config and TransNeXt's 5-scale ones do; everything else is the 4-scale recipe (see there).
# The stride-4 level quadruples the encoder's tokens: mmdet's Swin-L config turns on activation
# checkpointing for memory (here: --cfg-options model.backbone.with_cp=True).
_base_ = './dino_mambaout_tiny_4scale_12e.py'

num_levels = 5
model = dict(
    num_feature_levels=num_levels,
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 576], num_outs=num_levels),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))

differences_from_base = dict.fromkeys(
    ['num_levels', 'model.num_feature_levels', 'model.neck.num_outs',
     'model.encoder.layer_cfg.self_attn_cfg.num_levels',
     'model.decoder.layer_cfg.cross_attn_cfg.num_levels'],
    "5 feature levels (all four stages and the extra one), as mmdet's Swin-L DINO-5scale")
