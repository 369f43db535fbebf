"""tools/export_onnx.py: femto networks exported, run in ONNX Runtime, compared with PyTorch."""
import re

import pytest
import torch
from torch import nn

from mambaout_mm.deploy.onnx_export import ExportError, compare, dynamo_exporter, export, network

from .tools_helpers import config, run_tool, tool

DET = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG = config('upernet/upernet_mambaout_femto_shapes.py')
exporter = pytest.mark.skipif(not dynamo_exporter(), reason='needs the dynamo exporter (torch '
                              '>= 2.6); the oldest-stack test below checks the message instead')


def agreements(stdout: str) -> list[tuple[str, float]]:
    """(input shape, max relative error) per checked input."""
    return [(shape, float(rel)) for shape, rel in re.findall(
        r'ONNX Runtime vs PyTorch, input (\S+): max abs error \S+, max relative error (\S+)',
        stdout)]


@exporter
def test_backbone_with_free_sizes_agrees_at_two_sizes(tmp_path):
    import onnx
    out = tmp_path / 'backbone.onnx'
    # --tolerance 0: no float graph agrees exactly, so this also shows the exit status of a miss
    proc = run_tool(tool('export_onnx.py'), SEG, '--part', 'backbone', '--out', str(out),
                    '--shape', '64', '96', '--dynamic', '--tolerance', '0', check=False)
    assert proc.returncode == 1 and 'exceeds --tolerance 0e+00' in proc.stderr
    checked = agreements(proc.stdout)
    assert [shape for shape, _ in checked] == ['1x3x64x96', '2x3x128x128']
    assert all(0 < rel < 1e-4 for _, rel in checked)
    graph = onnx.load(str(out)).graph
    assert [d.dim_param != '' for d in graph.input[0].type.tensor_type.shape.dim] == [
        True, False, True, True]  # batch, height and width free; 3 channels
    assert len(graph.output) == 4  # strides 4, 8, 16, 32


@exporter
@pytest.mark.slow
def test_detector_dense_part(tmp_path):
    proc = run_tool(tool('export_onnx.py'), DET, '--out', str(tmp_path / 'det.onnx'),
                    '--shape', '128', '160', '--dynamic')
    assert len(agreements(proc.stdout)) == 2 and all(r < 1e-4 for _, r in agreements(proc.stdout))


@exporter
def test_segmentor_end_to_end(tmp_path):
    proc = run_tool(tool('export_onnx.py'), SEG, '--out', str(tmp_path / 'seg.onnx'),
                    '--shape', '64', '64')
    assert len(agreements(proc.stdout)) == 1 and agreements(proc.stdout)[0][1] < 1e-4


@exporter
def test_what_cannot_hold_is_refused(tmp_path):
    # UperNet's pyramid pooling is traced for one size: free sizes would give wrong logits.
    proc = run_tool(tool('export_onnx.py'), SEG, '--out', str(tmp_path / 'seg.onnx'),
                    '--shape', '64', '64', '--dynamic', check=False)
    assert proc.returncode == 1 and 'holds for one input size only' in proc.stderr


@exporter
def test_the_check_catches_a_graph_that_differs(tmp_path):
    path = str(tmp_path / 'conv.onnx')
    exported, other = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    export(exported, (1, 3, 16, 16), path)
    assert compare(exported, path, (1, 3, 16, 16)).max_rel < 1e-5
    assert compare(other, path, (1, 3, 16, 16)).max_rel > 1e-2


def test_unsupported_networks_are_named():
    with pytest.raises(ExportError, match='Sequential is not exported whole: .*--part backbone'):
        network(nn.Sequential(), 'model')
    with pytest.raises(ExportError, match="part must be one of"):
        network(nn.Sequential(), 'neck')


@pytest.mark.skipif(dynamo_exporter(), reason='this torch has the dynamo exporter')
def test_an_older_torch_is_told_what_export_needs(tmp_path):
    proc = run_tool(tool('export_onnx.py'), SEG, '--out', str(tmp_path / 'x.onnx'), check=False)
    assert proc.returncode == 1
    assert f'torch {torch.__version__} lacks: use torch >= 2.6' in proc.stderr
