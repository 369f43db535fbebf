"""mambaout-mm: MambaOut backbones for mmdetection and mmsegmentation."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def read_version() -> str:
    namespace: dict = {}
    exec((ROOT / 'mambaout_mm' / 'version.py').read_text(), namespace)
    return namespace['__version__']


setup(
    name='mambaout-mm',
    version=read_version(),
    description='MambaOut backbones for Mask R-CNN (mmdetection) and UperNet (mmsegmentation)',
    long_description=(ROOT / 'README.md').read_text() if (ROOT / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mambaout_mm', 'mambaout_mm.*']),
    package_data={'mambaout_mm': ['data/*.json']},
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.1',
        'timm>=1.0.9',
        'safetensors',
        'mmengine>=0.10.4,<0.11',
        'mmcv>=2.0.0,<2.2.0',
    ],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4', 'pycocotools'],
        'seg': ['mmsegmentation>=1.2.2,<1.3', 'ftfy', 'regex'],
        'all': ['mmdet>=3.3.0,<3.4', 'pycocotools', 'mmsegmentation>=1.2.2,<1.3', 'ftfy',
                'regex', 'matplotlib'],
        'peers': ['mmpretrain>=1.2.0,<1.3'],  # ConvNeXt in the peers' configs (tools/get_flops.py)
        'deploy': ['onnx', 'onnxscript', 'onnxruntime'],  # tools/export_onnx.py, torch >= 2.6
        'test': ['pytest'],
    },
    license='Apache-2.0',
)
