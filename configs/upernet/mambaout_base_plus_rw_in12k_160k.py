# UperNet with timm's MambaOut-Base+ (arch base_plus_rw) pre-trained on ImageNet-12k, 160k on
# ADE20K at 512x512 crops (not in the paper): our Table 3 recipe (mambaout_base_160k.py) with the
# larger, better pre-trained backbone, as ConvNeXt-B and Swin-B are run with ImageNet-22k weights.
_base_ = './mambaout_base_160k.py'

# timm's ImageNet-12k weights (the 11821-class head is dropped), downloaded once into torch's hub
# cache (offline: --cfg-options model.backbone.init_cfg.checkpoint=LOCAL_FILE).
pretrained = ('https://huggingface.co/timm/mambaout_base_plus_rw.sw_e150_in12k/resolve/main/'
              'model.safetensors')

model = dict(
    backbone=dict(arch='base_plus_rw',  # dims as base: the heads' in_channels stay
                  drop_path_rate=0.6,  # the authors' Base rate; this one is deeper still
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
