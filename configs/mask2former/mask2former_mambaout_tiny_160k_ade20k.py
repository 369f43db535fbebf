# Mask2Former with MambaOut-Tiny, 160k iterations on ADE20K, 512x512 crops (not in the paper).
# mmseg's Swin-T recipe as it stands (mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-
# 512x512.py): its head (100 queries, MSDeformAttn pixel decoder, 9 decoder layers), ADE20K
# pipelines, AdamW lr 1e-4 and weight decay 0.05 with the backbone at 0.1x lr and its norms without
# decay, gradient clipping at 0.01, poly schedule, batch 16 (8 GPUs x 2), float32.
# What differs, and why (differences_from_base at the end lists each setting):
# - the backbone: MambaOut with a LayerNorm on each stage output (built in) and the drop-path
#   rates the MambaOut authors gave for ADE20K (official repo issue #251: 0.3 T, 0.3 or 0.4 S,
#   0.6 B), as configs/upernet/; the head takes its channels;
# - the optimizer's custom_keys name MambaOut's norms (its stem, downsampling, block and output
#   LayerNorms) where Swin's name Swin's: the same rule, backbone at 0.1x lr, its norms undecayed.
# Float32 as mmseg's, and no --amp: under FP16 autocast (mmdet issue #10909; docs/mask2former.md)
# the head averages the mask loss over (matched masks x 12544 points) counted in fp16, inf from 6
# masks a batch, so loss_mask is NaN from the first step; and the matcher sums 12544 point costs
# in one fp16 einsum, inf once masks are confident. mmcv's deformable attention has no bfloat16
# CUDA kernel. Layer-wise lr decay on top of the 0.1x backbone, e.g. 0.9 (num_layers: 6 for
# Tiny, 12 for Small and Base; mambaout_mm/engine/optim.py):
#   --cfg-options optim_wrapper.constructor=MambaOutLearningRateDecay
#     optim_wrapper.paramwise_cfg.decay_rate=0.9 optim_wrapper.paramwise_cfg.num_layers=6
_base_ = 'mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py'
# mmseg's config imports mmdet.models (the head's losses, matcher and transformer layers), which
# mmseg.models imports in any case (its Mask2Former head is mmdet's)
custom_imports = dict(imports=['mambaout_mm'], allow_failed_imports=False)

# The official ImageNet-1k weights, downloaded once by mmengine into torch's hub cache
# (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth'
depths = [3, 3, 9, 3]  # MambaOut-Tiny's blocks per stage (for the norms' custom_keys below)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOutBackbone',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,  # authors: 0.3 (T), 0.3 or 0.4 (S), 0.6 (B)
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 576]))

# Swin's rule for MambaOut's names: the backbone at 0.1x lr, its LayerNorms (stem norm1/norm2,
# downsampling norm, each block's norm, the outputs' norm0-3) and the head's query and level
# embeddings without weight decay; the head's norms through norm_decay_mult=0.
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.norm': backbone_norm_multi,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi,
}
custom_keys.update({f'backbone.downsample_layers.{i}.norm': backbone_norm_multi
                    for i in range(len(depths))})
custom_keys.update({f'backbone.stages.{stage}.{block}.norm': backbone_norm_multi
                    for stage, num_blocks in enumerate(depths) for block in range(num_blocks)})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(_delete_=True, **custom_keys)))

# FP16 autocast (--amp on a GPU) is refused with this reason (mambaout_mm/engine/amp.py); the
# pitfalls section of docs/mask2former.md has the measurements.
fp16_refused = ("mmdet's Mask2Former head (mmseg's is mmdet's) overflows FP16: its mask loss "
                "divides by the matched masks times 12544 points counted in fp16 (inf from 6 "
                "masks, NaN loss), and its matcher's cost sums 12544 points in an fp16 einsum "
                "(mmdet issue #10909; docs/mask2former.md).")

# What differs from the toolbox config above (tests/test_head_configs.py fails on any other
# difference, and on a listed one that is not there), each with its reason. Configs deriving from
# this one add their own entries (mmengine merges the dicts).
differences_from_base = {
    'fp16_refused': 'why --amp is refused on a GPU (mixed precision, docs/mask2former.md)',
    'model.backbone': "MambaOut instead of Swin-T: ImageNet-1k weights of the official release, "
                      "the four stages, each with a LayerNorm on its output, the drop path the "
                      "authors gave for ADE20K (official repo issue #251)",
    'model.decode_head.in_channels': "the channels of MambaOut's four stages",
    'pretrained': 'the URL of the official ImageNet-1k weights',
    'depths': "MambaOut's blocks per stage, which name its norms in custom_keys",
    'custom_keys': "Swin's rule (backbone at 0.1x lr, its norms and the head's embeddings "
                   "without weight decay) for MambaOut's module names",
    'optim_wrapper.paramwise_cfg.custom_keys': 'as the line above',
    'custom_imports': "mambaout_mm; mmdet.models comes with mmseg.models (see above)",
}
