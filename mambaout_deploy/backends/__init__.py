"""The backends that run a deployed folder's graphs, and their registry.

A backend is a :class:`Backend` subclass registered with :func:`register`: its ``name``, the
precisions it runs and, for each, the artifact it runs from (:data:`ONNX`, the exported graphs,
or a kind of file it makes from them with :meth:`Backend.make`, recorded in the manifest's
``artifacts``), and :meth:`Backend.session` to run one graph. Every module of this package is
imported with it, so a backend is one new module here (plus its tests); the command line's
choices (:mod:`mambaout_deploy.cli`), :func:`mambaout_deploy.load` and mambaout_mm's deploy
benchmark read the registry. Here: :mod:`.onnxruntime` and :mod:`.openvino`.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import numpy as np

from ..errors import DeployError
from ..manifest import Manifest

#: the artifact every backend can run from: the ONNX graphs the exporter wrote (``graphs``)
ONNX = 'onnx'


class BackendError(DeployError, RuntimeError):
    """A backend or precision this machine or installation cannot run; the message says why."""


class Session(Protocol):
    """One graph compiled for a backend: its input names, and a run on inputs by name."""
    inputs: list[str]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class Backend(ABC):
    name: ClassVar[str]
    #: the Python distribution it runs on (its version goes into benchmark headers)
    package: ClassVar[str]
    #: precision -> the artifact it runs from: ONNX, or a kind :meth:`make` writes
    artifacts: ClassVar[dict[str, str]]

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(self.artifacts)

    def unsupported(self, precision: str) -> str | None:
        """Why this machine or installation cannot run ``precision`` here; None where it can."""
        return None

    @abstractmethod
    def session(self, path: str, threads: int | None, precision: str) -> Session:
        """The graph file ``path`` (the precision's artifact) compiled to run in ``precision``."""

    def make(self, folder: str, precision: str, images: list[str]) -> Manifest:
        """Write the artifact ``precision`` runs from into the deployed ``folder`` (calibrated on
        ``images`` where it needs them) and record it in the manifest; the manifest."""
        raise BackendError(f'{self.name} runs {precision} from the exported graphs: there is '
                           'nothing to make (no --calibrate).')

    def version(self) -> str | None:
        """The installed version of :attr:`package`; None where it is not installed."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def check(self, precision: str) -> None:
        if precision not in self.artifacts:
            others = [n for n, cls in _REGISTRY.items() if precision in cls.artifacts]
            raise BackendError(f'{self.name} runs {list(self.precisions)}, not {precision!r}'
                               + (f'; use --backend {" or ".join(others)}.' if others else '.'))
        reason = self.unsupported(precision)
        if reason:
            raise BackendError(reason)


_REGISTRY: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: ``cls`` is the backend called ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def backends() -> dict[str, type[Backend]]:
    """Every registered backend by name, in the order registered."""
    return dict(_REGISTRY)


def precisions() -> tuple[str, ...]:
    """The precisions some backend runs."""
    return tuple(dict.fromkeys(p for cls in _REGISTRY.values() for p in cls.artifacts))


def get_backend(name: str) -> Backend:
    if name not in _REGISTRY:
        raise BackendError(f'Unknown backend {name!r}; choose one of {list(_REGISTRY)}.')
    return _REGISTRY[name]()


class Graph:
    """One graph of a deployed folder on a backend; call with numpy inputs by name."""

    def __init__(self, path: str, session: Session) -> None:
        self.name, self.session = os.path.basename(path), session

    def __call__(self, **feed: np.ndarray) -> list[np.ndarray]:
        missing = set(self.session.inputs) - set(feed)
        if missing:
            raise ValueError(f'{self.name} needs the inputs {sorted(missing)}.')
        return self.session.run({k: feed[k] for k in self.session.inputs})


def load_graphs(folder: str, manifest: Manifest, backend: str, threads: int | None,
                precision: str) -> dict[str, Graph]:
    """Every graph of a deployed folder, from the artifact ``backend`` runs ``precision`` from
    (a graph it has no such file of runs from its ONNX graph: int8 quantises the backbone's)."""
    engine = get_backend(backend)
    engine.check(precision)
    kind = engine.artifacts[precision]
    made = manifest.artifacts.get(kind, {})
    if kind != ONNX and not made:
        raise BackendError(
            f'{folder} has no {kind} files, which {backend} runs {precision} from: make them with '
            f'`tools/deploy.py {folder} IMAGES --backend {backend} --precision {precision} '
            f'--calibrate TRAIN_IMAGES`.')
    files = {**manifest.graphs, **made}
    return {name: Graph(path, engine.session(path, threads, precision))
            for name, path in ((n, os.path.join(folder, f)) for n, f in files.items())}


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
