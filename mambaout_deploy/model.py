"""What every deployed model does first: its manifest, its head's settings and its graphs on a
backend; an image read and prepared as the test pipeline does."""
from __future__ import annotations

import numpy as np

from .backends import load_graphs
from .image import Prepared, prepare, read_image
from .manifest import Manifest


class DeployedModel:
    def __init__(self, folder: str, manifest: Manifest, backend: str = 'onnxruntime',
                 threads: int | None = None, precision: str = 'fp32') -> None:
        self.manifest, self.classes = manifest, manifest.classes
        self.settings = getattr(manifest, manifest.head, None)  # the head's section
        self.graphs = load_graphs(folder, manifest, backend, threads, precision)

    def prepare(self, image: str | np.ndarray) -> Prepared:
        """The network's input made from an image file or a loaded (BGR) image."""
        return prepare(read_image(image) if isinstance(image, str) else image,
                       self.manifest.preprocess)
