"""Training and testing with mmengine: the tools' run set-up and pre-run checks, mixed precision,
hooks, the optimizer constructor, the FP16 emulation.
"""
