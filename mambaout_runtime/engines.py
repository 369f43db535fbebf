"""The backends that run a deployed graph: ONNX Runtime (fp32) and OpenVINO (fp32; bf16 where
the CPU computes it natively; int8 for the graphs :mod:`.quantize` made), chosen in this one
place."""
from __future__ import annotations

import os

import numpy as np

BACKENDS = ('onnxruntime', 'openvino')
PRECISIONS = ('fp32', 'bf16', 'int8')


class BackendError(RuntimeError):
    """A backend or precision this machine or installation cannot run; the message says why."""


def openvino_core():
    try:
        import openvino as ov
    except ImportError as err:
        raise BackendError('--backend openvino needs OpenVINO: pip install openvino') from err
    return ov.Core()


def native_bf16(core) -> bool:
    """OpenVINO's CPU plugin computes bf16 natively (AVX512-BF16 or AMX)."""
    return 'BF16' in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


class Engine:
    """One ONNX graph, compiled for ``backend``; call with numpy inputs by name."""

    def __init__(self, path: str, backend: str = 'onnxruntime', threads: int | None = None,
                 precision: str = 'fp32') -> None:
        if backend not in BACKENDS:
            raise BackendError(f'Unknown backend {backend!r}; choose one of {BACKENDS}.')
        if precision not in PRECISIONS:
            raise BackendError(f'Unknown precision {precision!r}; choose one of {PRECISIONS}.')
        self.name = os.path.basename(path)
        if backend == 'onnxruntime':
            self._init_onnxruntime(path, threads, precision)
        else:
            self._init_openvino(path, threads, precision)

    def _init_onnxruntime(self, path: str, threads: int | None, precision: str) -> None:
        if precision != 'fp32':
            raise BackendError("ONNX Runtime's CPU provider has no bf16 kernels for these "
                               f'graphs; use --backend openvino for {precision}.')
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        names = [o.name for o in session.get_outputs()]
        self.inputs = [i.name for i in session.get_inputs()]
        self._run = lambda feed: session.run(names, feed)

    def _init_openvino(self, path: str, threads: int | None, precision: str) -> None:
        core = openvino_core()
        if precision == 'bf16' and not native_bf16(core):
            raise BackendError('This CPU has no native bf16 (AVX512-BF16 or AMX), so OpenVINO '
                               'would not run bf16 faster than fp32; use fp32.')
        # int8: the quantised layers in int8, the rest in float32
        config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16' else 'f32',
                  'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        compiled = core.compile_model(core.read_model(path), 'CPU', config)
        request = compiled.create_infer_request()
        self.inputs = [i.get_any_name() for i in compiled.inputs]
        outputs = compiled.outputs

        def run(feed: dict) -> list[np.ndarray]:
            result = request.infer(feed)
            return [np.array(result[o]) for o in outputs]  # copies: the request reuses buffers
        self._run = run

    def __call__(self, **feed: np.ndarray) -> list[np.ndarray]:
        missing = set(self.inputs) - set(feed)
        if missing:
            raise ValueError(f'{self.name} needs the inputs {sorted(missing)}.')
        return self._run({k: feed[k] for k in self.inputs})


def load_graphs(folder: str, manifest: dict, backend: str, threads: int | None,
                precision: str) -> dict[str, Engine]:
    """Every graph of a deployed folder; for int8 the quantised ones where they exist."""
    int8 = manifest.get('int8', {}) if precision == 'int8' else {}
    if precision == 'int8' and not int8:
        raise BackendError(f'{folder} has no int8 graphs: make them with tools/deploy.py '
                           '--calibrate TRAIN_IMAGES (mambaout_runtime.quantize).')
    return {name: Engine(os.path.join(folder, int8.get(name, file)), backend, threads, precision)
            for name, file in manifest['graphs'].items()}
