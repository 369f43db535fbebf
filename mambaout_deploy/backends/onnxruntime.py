"""ONNX Runtime's CPU provider: fp32 from the exported graphs. (Its CPU provider has no bf16
kernels for these graphs, and its own int8 ran slower than fp32 here: docs/deploy.md.)"""
from __future__ import annotations

import numpy as np

from . import ONNX, Backend, BackendError, register


class OnnxRuntimeSession:
    def __init__(self, path: str, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError('--backend onnxruntime needs ONNX Runtime: pip install '
                               'onnxruntime') from err
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.inputs = [i.name for i in self._session.get_inputs()]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(self._outputs, feed)


@register
class OnnxRuntime(Backend):
    name = 'onnxruntime'
    package = 'onnxruntime'
    artifacts = {'fp32': ONNX}

    def session(self, path: str, threads: int | None, precision: str) -> OnnxRuntimeSession:
        self.check(precision)
        return OnnxRuntimeSession(path, threads)
