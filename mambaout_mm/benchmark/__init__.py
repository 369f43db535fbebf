"""Side-by-side speed and memory of MambaOut and reference backbones, or of whole models.

A subject (``subjects``) is a backbone from ``SUBJECTS`` or a detector/segmentor config (``*.py``,
also ``mmdet::``/``mmseg::`` paths), which runs on synthetic annotated images (``synthetic``).
Every subject gets the same input; timed runs are interleaved (``timing``) so that machine noise
hits all of them alike; the report (``tables``) gives medians, spread and ratios to the first
subject. Peak memory (``memory``) is measured in a fresh process per subject on a CPU.
``run.run_benchmark`` puts them together.
"""
