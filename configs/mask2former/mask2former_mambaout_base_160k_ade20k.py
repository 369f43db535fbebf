# Mask2Former with MambaOut-Base, 160k iterations on ADE20K, 512x512 crops (not in the paper):
# mask2former_mambaout_tiny_160k_ade20k.py (mmseg's Swin recipe) with the Base backbone.
# Small's config: Base has its depths, so its norms' keys
_base_ = './mask2former_mambaout_small_160k_ade20k.py'

pretrained = 'https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.6,  # the authors' Base rate
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 768]))
