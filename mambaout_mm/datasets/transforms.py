"""An image loader that names the file it cannot read. Imports mmcv (not needed to import the
package); ``tools/train.py`` and ``tools/test.py`` put it in place of mmcv's loader."""
from __future__ import annotations

from mmcv.transforms import LoadImageFromFile
from mmengine.registry import TRANSFORMS

from ..utils.errors import ImageFileError
from .data_check import image_problem


@TRANSFORMS.register_module()
class NamedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments), whose failures name the file and what is
    wrong with it (missing, empty, not an image) instead of the decoder's bare assertion."""

    def transform(self, results: dict) -> dict | None:
        try:
            return super().transform(results)
        except Exception as err:  # cv2, pillow, turbojpeg and the storage backends raise their own
            path = results['img_path']
            problem = image_problem(path, self.backend_args) or f'could not be loaded ({err})'
            raise ImageFileError(
                f'image {path} {problem}. Replace or remove it; `python tools/check_dataset.py '
                f'CONFIG` lists every unreadable file of a dataset.') from err
