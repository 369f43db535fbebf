"""The top-level ``setup.py`` of an OpenMMLab project (``pip install -v -e .``, as mmdet's README):
a shim over pyproject.toml, which holds all the metadata. It adds one thing, to editable installs.

mmengine (``mambaout_mm::`` configs) and mim (``mim search``/``mim train``) find ``.mim/`` at
``<where the distribution's metadata is>/<first line of its top_level.txt>`` (``pkg_resources``).
A wheel puts both in site-packages. An editable install (PEP 660) puts only the metadata there,
the code staying in the checkout, so the first line of its ``top_level.txt`` names the package's
folder in the checkout, an absolute path that ``os.path.join`` keeps as it is. setuptools sorts
``top_level.txt``, where ``mambaout_deploy`` (the deployment runtime, shipped beside) would come
first; so every ``top_level.txt`` starts with ``mambaout_mm``, wheels' too.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel
from setuptools.command.egg_info import egg_info

PACKAGE = 'mambaout_mm'  # the package holding .mim/


def lead_top_level(top_level: Path, first: str) -> None:
    """``top_level.txt`` with ``first`` as its first line."""
    names = [n for n in top_level.read_text().splitlines() if n and n != first]
    top_level.write_text('\n'.join([first, *names]) + '\n')


class EggInfo(egg_info):
    """setuptools' metadata (wheels' and editable installs'), ``top_level.txt`` led by PACKAGE."""

    def run(self) -> None:
        super().run()
        lead_top_level(Path(self.egg_info, 'top_level.txt'), PACKAGE)


class EditableWheel(editable_wheel):
    """setuptools' editable wheel, its ``top_level.txt`` led by the package's folder."""

    def run(self) -> None:
        self._ensure_dist_info()  # pip's prepared metadata, or setuptools' own
        lead_top_level(Path(self.dist_info_dir, 'top_level.txt'),
                       str(Path(self.project_dir, PACKAGE).resolve()))
        super().run()


setup(cmdclass={'egg_info': EggInfo, 'editable_wheel': EditableWheel})
