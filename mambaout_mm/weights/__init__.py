"""Checkpoints: the official, timm and mmengine layouts, loading with checks, conversion, and safe
unpickling of mmengine checkpoints.
"""
