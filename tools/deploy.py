"""Run a model exported with ``tools/export_onnx.py --part end2end`` on images, without torch,
mmcv or mmdet: pictures, COCO-format detections or label maps, and ``--eval`` accuracy.

    python tools/deploy.py FOLDER IMAGE|DIR ... --out DIR [--backend NAME] [--precision P]
        [--calibrate DIR] [--threads N] [--score-thr T] [--eval ANN.json|LABEL_DIR]

The same as ``python -m mambaout_deploy``; see mambaout_deploy/cli.py.
"""
import sys

from mambaout_deploy.cli import main

if __name__ == '__main__':
    sys.exit(main())
