"""tools/get_flops.py reproduces the Params and MACs columns of Tables 2 and 3 (within 1%).

Counting a full-size model at the paper's input size is CPU work of tens of seconds each; the six
figures together are marked slow: `make test-slow` runs them.
"""
import pytest

from mambaout_mm.complexity import model_complexity
from mambaout_mm.paper import paper_row

from .tools_helpers import config, run_tool, tool

ROWS = [('mask_rcnn/mambaout_tiny_1x.py', 'det', 'MambaOut-Tiny'),
        ('mask_rcnn/mambaout_small_1x.py', 'det', 'MambaOut-Small'),
        ('mask_rcnn/mambaout_base_1x.py', 'det', 'MambaOut-Base'),
        ('upernet/mambaout_tiny_160k.py', 'seg', 'MambaOut-Tiny'),
        ('upernet/mambaout_small_160k.py', 'seg', 'MambaOut-Small'),
        ('upernet/mambaout_base_160k.py', 'seg', 'MambaOut-Base')]


@pytest.mark.slow
@pytest.mark.parametrize('path,task,row', ROWS, ids=[r[0] for r in ROWS])
def test_params_and_macs_match_the_paper(path, task, row):
    measured = model_complexity(config(path))
    expected = paper_row(task, row)
    assert measured['shape'] == ([800, 1280] if task == 'det' else [512, 2048])
    assert measured['macs_g'] == pytest.approx(expected['macs_g'], rel=0.01)
    assert measured['params_m'] == pytest.approx(expected['params_m'], rel=0.01)


def test_counts_scale_with_the_input_and_skip_the_auxiliary_head():
    small = model_complexity(config('upernet/mambaout_femto_shapes.py'), shape=(128, 128))
    large = model_complexity(config('upernet/mambaout_femto_shapes.py'), shape=(256, 256))
    assert small['params_m'] == large['params_m'] > 0
    assert large['macs_g'] == pytest.approx(4 * small['macs_g'], rel=0.05)


def test_cli_prints_a_row_per_config_including_a_peer(tmp_path):
    out = tmp_path / 'rows.json'
    proc = run_tool(tool('get_flops.py'), config('mask_rcnn/mambaout_femto_shapes.py'),
                    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '--shape', '128', '192',
                    '--json', str(out))
    lines = [line for line in proc.stdout.splitlines() if line.startswith('| ')]
    assert len(lines) == 3 and '128x192' in lines[1] and 'swin' in lines[2]
    assert out.read_text().count('macs_g') == 2
