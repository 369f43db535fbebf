"""Generated toy datasets (COCO and ADE20K layouts) for quick, offline training and tests."""
from .shapes import (SHAPE_CLASSES, ade_shapes_metainfo, coco_shapes_metainfo, make_ade_shapes,
                     make_coco_shapes)

__all__ = ['SHAPE_CLASSES', 'ade_shapes_metainfo', 'coco_shapes_metainfo', 'make_ade_shapes',
           'make_coco_shapes']
