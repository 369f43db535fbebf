"""tools/demo.py draws detections and segmentations into a real PNG."""
import numpy as np
from PIL import Image

from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes

from .tools_helpers import config, run_tool, tool


def test_detection_demo_on_one_image(tmp_path):
    make_coco_shapes(tmp_path / 'coco', num_train=1, num_val=1)
    image = next((tmp_path / 'coco' / 'val2017').glob('*.jpg'))
    out = tmp_path / 'det.png'
    run_tool(tool('demo.py'), str(image), config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py'),
             '--out', str(out), '--score-thr', '0.0')
    with Image.open(out) as picture:
        assert picture.format == 'PNG'
        assert picture.size == Image.open(image).size
        assert np.asarray(picture).std() > 0


def test_segmentation_demo_grid_with_ground_truth_and_legend(tmp_path):
    make_ade_shapes(tmp_path / 'ade', num_train=1, num_val=2)
    out = tmp_path / 'seg.png'
    run_tool(tool('demo.py'), str(tmp_path / 'ade' / 'images' / 'validation'),
             config('upernet/upernet_mambaout_femto_shapes.py'), '--out', str(out))
    with Image.open(out) as picture:
        assert picture.format == 'PNG'
        width, height = picture.size
    # two images side by side, each ground truth beside prediction (2 x 128 wide),
    # with a legend strip under the 128-pixel-high frame
    assert width == 2 * 2 * 128 and height > 128


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    proc = run_tool(tool('demo.py'), str(tmp_path),
                    config('upernet/upernet_mambaout_femto_shapes.py'),
                    str(tmp_path / 'nope.pth'), '--out', str(tmp_path / 'x.png'), check=False)
    assert proc.returncode != 0 and 'checkpoint not found' in proc.stderr
