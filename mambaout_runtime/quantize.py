"""int8 post-training quantisation of a deployed folder with NNCF, for OpenVINO.

What is quantised: the graph that holds the backbone (the detector's ``dense`` graph: MambaOut,
FPN and RPN; the segmentor's one graph), its convolutions and matrix products with int8 weights
and activations (mixed preset: symmetric weights, asymmetric activations) calibrated on
training images pre-processed as at test time. What stays in float: the detector's box and mask
heads (a few percent of the FLOPs, and the boxes' and masks' precision), and every
normalisation, activation and softmax. The result is ``NAME.int8.xml`` (OpenVINO IR) beside the
ONNX graph, named in the manifest's ``int8`` entry; ``tools/deploy.py --calibrate DIR
--precision int8`` makes and runs it."""
from __future__ import annotations

import os

from .engines import BackendError
from .image import prepare, read_image
from .manifest import read_manifest, write_manifest

QUANTISED = {'detection': 'dense', 'segmentation': 'segmentor'}


def quantize(folder: str, images: list[str], subset: int = 64) -> str:
    """Calibrate on up to ``subset`` of ``images``; the int8 IR's path."""
    try:
        import nncf
        import openvino as ov
    except ImportError as err:
        raise BackendError('int8 quantisation needs OpenVINO and NNCF: pip install openvino '
                           'nncf') from err
    manifest = read_manifest(folder)
    name = QUANTISED[manifest['task']]
    model = ov.Core().read_model(os.path.join(folder, manifest['graphs'][name]))
    tensors = [prepare(read_image(p), manifest['preprocess']).tensor for p in images[:subset]]
    quantised = nncf.quantize(model, nncf.Dataset(tensors), subset_size=len(tensors),
                              preset=nncf.QuantizationPreset.MIXED)
    path = os.path.join(folder, f'{name}.int8.xml')
    ov.save_model(quantised, path, compress_to_fp16=False)
    manifest['int8'] = {name: os.path.basename(path)}
    write_manifest(folder, {k: v for k, v in manifest.items() if k != 'format'})
    return path
