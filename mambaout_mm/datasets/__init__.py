"""Data: generated toy datasets (COCO and ADE20K layouts) for offline training and tests, the
dataset checks made before a run, and the image loader that names the file it cannot read."""
from .shapes import (
                     LAYOUTS,
                     SHAPE_CLASSES,
                     ShapesLayout,
                     ade_shapes_metainfo,
                     coco_shapes_metainfo,
                     make_ade_shapes,
                     make_coco_shapes,
)

__all__ = ['LAYOUTS', 'SHAPE_CLASSES', 'ShapesLayout', 'ade_shapes_metainfo',
           'coco_shapes_metainfo', 'make_ade_shapes', 'make_coco_shapes']
