"""The top-level ``setup.py`` of an OpenMMLab project (``pip install -v -e .``, as mmdet's README):
a shim over pyproject.toml, which holds all the metadata. It adds one thing, to editable installs.

mmengine (``mambaout_mm::`` configs) and mim (``mim search``/``mim train``) find ``.mim/`` at
``<where the distribution's metadata is>/<first line of its top_level.txt>`` (``pkg_resources``).
A wheel puts both in site-packages. An editable install (PEP 660) puts only the metadata there,
the code staying in the checkout, so the first line of its ``top_level.txt`` names the package's
folder in the checkout, an absolute path that ``os.path.join`` keeps as it is. Wheels are built as
setuptools builds them.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel

PACKAGE = 'mambaout_mm'  # the package holding .mim/


class EditableWheel(editable_wheel):
    """setuptools' editable wheel, its ``top_level.txt`` led by the package's folder."""

    def run(self) -> None:
        self._ensure_dist_info()  # pip's prepared metadata, or setuptools' own
        top_level = Path(self.dist_info_dir, 'top_level.txt')
        package = str(Path(self.project_dir, PACKAGE).resolve())
        names = [n for n in top_level.read_text().splitlines() if n and n != package]
        top_level.write_text('\n'.join([package, *names]) + '\n')
        super().run()


setup(cmdclass={'editable_wheel': EditableWheel})
