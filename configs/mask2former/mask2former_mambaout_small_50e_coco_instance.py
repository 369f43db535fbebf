# Mask2Former with MambaOut-Small, COCO 2017 instance segmentation, 50 epochs (not in the paper):
# mask2former_mambaout_tiny_50e_coco_instance.py (mmdet's Swin recipe) with the Small backbone.
_base_ = './mask2former_mambaout_tiny_50e_coco_instance.py'

pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth'
depths = [3, 4, 27, 3]  # MambaOut-Small's blocks per stage

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,  # the authors' ADE20K alternative: 0.4
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# the norms of the blocks Tiny lacks (the base config's keys cover the rest)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    f'backbone.stages.{stage}.{block}.norm': dict(lr_mult=0.1, decay_mult=0.0)
    for stage, num_blocks in enumerate(depths) for block in range(num_blocks)}))
