"""OpenVINO's CPU plugin: fp32 and bf16 (where the CPU computes bf16 natively) from the exported
graphs, int8 from the :data:`INT8` artifact that :meth:`OpenVino.make` quantises with NNCF.

int8, what is quantised: the graph that holds the backbone (the detector's ``dense`` graph:
MambaOut, FPN and RPN; the segmentor's one graph), its convolutions and matrix products with int8
weights and activations (mixed preset: symmetric weights, asymmetric activations) calibrated on
training images pre-processed as at test time; a graph with attention (a Softmax: DINO's,
Mask2Former's) by NNCF's transformer scheme. What stays in float: the detector's box and mask
heads (a few percent of the FLOPs, and the boxes' and masks' precision), and every
normalisation, activation and softmax. The result is ``NAME.int8.xml`` (an OpenVINO IR) beside the
ONNX graph, named in the manifest's ``artifacts['openvino_ir_int8']``; ``tools/deploy.py
--calibrate DIR --backend openvino --precision int8`` makes and runs it."""
from __future__ import annotations

import os
import sys

import numpy as np

from ..image import prepare, read_image
from ..manifest import Manifest, read_manifest, write_manifest
from . import ONNX, Backend, BackendError, register

#: the artifact int8 runs from: OpenVINO IR with int8 weights and activations
INT8 = 'openvino_ir_int8'


def openvino_core():
    try:
        import openvino as ov
    except ImportError as err:
        raise BackendError('--backend openvino needs OpenVINO: pip install openvino') from err
    return ov.Core()


def native_bf16(core) -> bool:
    """OpenVINO's CPU plugin computes bf16 natively (AVX512-BF16 or AMX)."""
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


#: what OpenVINO 2026.4's CPU plugin says when its fused subgraphs ("snippets") cannot build a
#: matrix-product kernel for a shape; met in bf16 with Mask2Former-T's graphs on an AVX512-BF16
#: CPU (docs/deploy.md). The graph then runs compiled without snippets.
SNIPPETS_FAILURE = 'Cannot initialize brgemm descriptor'


class OpenVinoSession:
    def __init__(self, core, path: str, threads: int | None, precision: str) -> None:
        # int8: the quantised layers in int8, the rest in float32
        self._core, self._path = core, path
        self._config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16' else 'f32',
                        'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            self._config['INFERENCE_NUM_THREADS'] = threads
        self._compile()

    def _compile(self) -> None:
        compiled = self._core.compile_model(self._core.read_model(self._path), 'CPU',
                                            self._config)
        self._request = compiled.create_infer_request()
        self._outputs = compiled.outputs
        self.inputs = [i.get_any_name() for i in compiled.inputs]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            result = self._request.infer(feed)
        except RuntimeError as err:
            if SNIPPETS_FAILURE not in str(err) or 'SNIPPETS_MODE' in self._config:
                raise
            print(f'openvino: {os.path.basename(self._path)}: the CPU plugin could not build a '
                  f'fused kernel ({SNIPPETS_FAILURE}); compiled again without fused subgraphs '
                  f'(SNIPPETS_MODE=DISABLE)', file=sys.stderr)
            self._config['SNIPPETS_MODE'] = 'DISABLE'
            self._compile()
            result = self._request.infer(feed)
        return [np.array(result[o]) for o in self._outputs]  # copies: the request reuses buffers


@register
class OpenVino(Backend):
    name = 'openvino'
    package = 'openvino'
    artifacts = {'fp32': ONNX, 'bf16': ONNX, 'int8': INT8}

    def unsupported(self, precision: str) -> str | None:
        try:
            core = openvino_core()
        except BackendError as err:
            return str(err)
        if precision == 'bf16' and not native_bf16(core):
            return ('This CPU has no native bf16 (AVX512-BF16 or AMX), so OpenVINO would not run '
                    'bf16 faster than fp32; use fp32.')
        return None

    def session(self, path: str, threads: int | None, precision: str) -> OpenVinoSession:
        self.check(precision)
        return OpenVinoSession(openvino_core(), path, threads, precision)

    def make(self, folder: str, precision: str, images: list[str],
             subset: int = 64) -> Manifest:
        """int8: the backbone's graph quantised, calibrated on up to ``subset`` of ``images``."""
        if precision != 'int8':
            return super().make(folder, precision, images)
        try:
            import nncf
            import openvino as ov
        except ImportError as err:
            raise BackendError('int8 quantisation needs OpenVINO and NNCF: pip install openvino '
                               'nncf') from err
        manifest = read_manifest(folder)
        name = manifest.backbone_graph
        model = ov.Core().read_model(os.path.join(folder, manifest.graphs[name]))
        tensors = [prepare(read_image(p), manifest.preprocess).tensor for p in images[:subset]]
        attention = any(op.get_type_name() == 'Softmax' for op in model.get_ops())
        # NNCF's scheme for transformers (SmoothQuant; attention's products kept accurate) where
        # the graph attends (DINO, Mask2Former): the default scheme cost the femto Mask2Former
        # 4.8 mIoU and 20 mask AP (docs/deploy.md)
        quantised = nncf.quantize(model, nncf.Dataset(tensors), subset_size=len(tensors),
                                  preset=nncf.QuantizationPreset.MIXED,
                                  model_type=nncf.ModelType.TRANSFORMER if attention else None)
        file = f'{name}.int8.xml'
        ov.save_model(quantised, os.path.join(folder, file), compress_to_fp16=False)
        manifest.artifacts[INT8] = {name: file}
        write_manifest(folder, manifest)
        return manifest
