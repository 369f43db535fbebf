"""The deployment runtime's seams: the typed, versioned manifest (written and read as one
structure, any other version refused with what to do) and the backend registry (a backend
registered in one place is in the command line's choices, run by ``load`` and by the deploy
benchmark, and its made artifacts recorded in the manifest)."""
from __future__ import annotations

import dataclasses
import json
import re

import cv2
import numpy as np
import pytest

from mambaout_deploy import backends as B
from mambaout_deploy import load
from mambaout_deploy import manifest as M
from mambaout_deploy.cli import main, parse_args


def segmentation_manifest(**changes) -> M.Manifest:
    return M.Manifest(**{**dict(
        task='segmentation', head='segmentor', classes=['background', 'circle', 'square'],
        graphs=dict(segmentor='segmentor.onnx'),
        preprocess=M.Preprocess(scale=[64, 48], keep_ratio=False, mean=[1.0, 2.0, 3.0],
                                std=[4.0, 5.0, 6.0], to_rgb=True, pad_size_divisor=32),
        segmentation=M.Segmentation(reduce_zero_label=False),
        source=dict(config='c.py', checkpoint=None)), **changes})


def detection_manifest(stages: int = 1) -> M.Manifest:
    coder = M.BoxCoder(means=[0.0] * 4, stds=[1.0] * 4, wh_ratio_clip=0.016)
    return M.Manifest(
        task='detection', head='rcnn', classes=['circle'],
        graphs=dict(dense='dense.onnx', **{f'{h}{i}': f'{h}{i}.onnx' for i in range(stages)
                                           for h in ('box_head', 'mask_head')}),
        preprocess=M.Preprocess(scale=[1333, 800], keep_ratio=True, mean=[0.0] * 3,
                                std=[1.0] * 3, to_rgb=False),
        rcnn=M.Rcnn(
            features=5, roi_levels=4,
            rpn=M.Rpn(anchors=M.Anchors(strides=[4.0, 8.0],
                                        base_anchors=[[[-1.0, -1.0, 1.0, 1.0]]] * 2),
                      coder=coder, nms_pre=1000, max_per_img=1000, iou_threshold=0.7,
                      min_bbox_size=0.0),
            stages=[M.RoiStage(coder=coder, class_agnostic=stages > 1, finest_scale=56.0)
                    for _ in range(stages)],
            score_thr=0.05, iou_threshold=0.5, max_per_img=100, mask_thr_binary=0.5))


def retinanet_manifest() -> M.Manifest:
    return M.Manifest(
        task='detection', head='retinanet', classes=['circle', 'square'],
        graphs=dict(dense='dense.onnx'),
        preprocess=M.Preprocess(scale=[1333, 800], keep_ratio=True, mean=[0.0] * 3,
                                std=[1.0] * 3, to_rgb=False),
        retinanet=M.RetinaNet(
            anchors=M.Anchors(strides=[8.0], base_anchors=[[[-4.0, -4.0, 4.0, 4.0]]]),
            coder=M.BoxCoder(means=[0.0] * 4, stds=[1.0] * 4, wh_ratio_clip=0.016),
            nms_pre=1000, score_thr=0.05, min_bbox_size=0.0, iou_threshold=0.5,
            max_per_img=100))


def deployed_folder(tmp_path, manifest: M.Manifest):
    for file in manifest.files():
        (tmp_path / file).write_bytes(b'not read by the dummy backend')
    M.write_manifest(str(tmp_path), manifest)
    return tmp_path


def query_manifest(head: str) -> M.Manifest:
    section = M.Dino(max_per_img=100) if head == 'dino' else M.Mask2Former(100, things=2)
    return M.Manifest(task='detection', head=head, classes=['circle', 'square'],
                      graphs=dict(detector='detector.onnx'),
                      preprocess=segmentation_manifest().preprocess, **{head: section})


@pytest.mark.parametrize('make', [segmentation_manifest, detection_manifest,
                                  lambda: detection_manifest(stages=3), retinanet_manifest,
                                  lambda: query_manifest('dino'),
                                  lambda: query_manifest('mask2former')])
def test_the_manifest_written_is_the_manifest_read(make, tmp_path):
    manifest = make()
    assert M.read_manifest(str(deployed_folder(tmp_path, manifest))) == manifest
    assert M.Manifest.from_json(manifest.to_json()) == manifest
    data = json.loads((tmp_path / M.FILE).read_text())
    assert data['version'] == M.VERSION and data['task'] == manifest.task
    assert set(M.SECTIONS) & set(data) == (  # its head's section only
        {manifest.head} if manifest.task == 'detection' else {'segmentation'})
    assert set(manifest.graphs) == set(manifest.required_graphs())


@pytest.mark.parametrize('version,says', [
    (1, 'export the model again with this version: `tools/export_onnx.py'),
    (M.VERSION + 1, 'upgrade mambaout-deploy'),
    (None, 'export the model again')])
def test_another_manifest_version_is_refused_naming_both_and_what_to_do(version, says, tmp_path):
    data = segmentation_manifest().to_dict()
    data.pop('version')
    if version == 1:
        data = dict(data, format=1, int8={})  # as version 1 wrote it
    elif version is not None:
        data['version'] = version
    deployed_folder(tmp_path, segmentation_manifest())
    (tmp_path / M.FILE).write_text(json.dumps(data))
    with pytest.raises(M.ManifestError) as err:
        M.read_manifest(str(tmp_path))
    text = str(err.value)
    assert f'is manifest version {version!r}; this runtime reads version {M.VERSION}' in text
    assert says in text


@pytest.mark.parametrize('edit,says', [
    (lambda d: d['preprocess'].pop('mean'), "manifest.json.preprocess: missing keys ['mean']"),
    (lambda d: d.update(int8={}), "manifest.json: unknown keys ['int8']"),
    (lambda d: d['preprocess'].update(keep_ratio='yes'),
     "manifest.json.preprocess.keep_ratio is 'yes', not bool"),
    (lambda d: d['preprocess'].update(scale=[64, 48.5]),
     'manifest.json.preprocess.scale[1] is 48.5, not int'),
    (lambda d: d.update(task='classification'), "task 'classification' is not one of"),
    (lambda d: d.update(graphs={}), "names no graphs ['segmentor']"),
    (lambda d: d.pop('segmentation'), "has the sections ['segmentation'], not []"),
    (lambda d: d.update(head='rcnn'), "head 'rcnn' is not one of the segmentation heads"),
])
def test_a_manifest_that_does_not_fit_its_fields_is_refused_by_name(edit, says):
    data = segmentation_manifest().to_dict()
    edit(data)
    with pytest.raises(M.ManifestError, match=re.escape(says)):
        M.Manifest.from_dict(data)


@pytest.mark.parametrize('edit,says', [
    (lambda d: d['graphs'].pop('mask_head2'), "names no graphs ['mask_head2']"),
    (lambda d: d.update(retinanet=retinanet_manifest().to_dict()['retinanet']),
     "A rcnn manifest has the sections ['rcnn'], not ['rcnn', 'retinanet']"),
    (lambda d: d['rcnn']['stages'][1].pop('coder'), "stages[1]: missing keys ['coder']"),
])
def test_a_cascade_manifest_is_checked_stage_by_stage(edit, says):
    data = detection_manifest(stages=3).to_dict()
    edit(data)
    with pytest.raises(M.ManifestError, match=re.escape(says)):
        M.Manifest.from_dict(data)


def test_a_manifest_naming_files_the_folder_lacks_is_refused(tmp_path):
    manifest = segmentation_manifest(artifacts=dict(some_ir=dict(segmentor='segmentor.x.xml')))
    deployed_folder(tmp_path, manifest)
    (tmp_path / 'segmentor.x.xml').unlink()
    with pytest.raises(M.ManifestError, match=re.escape("lacks the files ['segmentor.x.xml']")):
        M.read_manifest(str(tmp_path))


def test_the_manifest_docstring_lists_its_fields_and_the_tasks_are_the_projects():
    listed = re.findall(r'^- ``(\w+)``', M.__doc__, flags=re.M)
    assert listed == [f.name for f in sorted(dataclasses.fields(M.Manifest),
                                             key=lambda f: f.name != 'version')]
    from mambaout_deploy import MODELS
    from mambaout_mm.utils.config import TASKS
    assert set(M.TASKS) == set(TASKS.values()) == {task for task, _ in M.HEADS.values()}
    assert set(MODELS) == set(M.HEADS)  # the runtime runs every head a manifest names
    assert set(M.SECTIONS) - {'segmentation'} <= set(M.HEADS)


class DummySession:
    """Class logits that make a label map of the image's brightest channel, ignoring the file."""
    inputs = ['image']

    def __init__(self, path: str, precision: str) -> None:
        self.path, self.precision = path, precision

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed['image']
        return [np.concatenate([x[:, :1] * 0, x[:, 2:3], x[:, 1:2]], axis=1)]


@pytest.fixture
def dummy(monkeypatch):
    """A backend registered by the test alone: fp32 from the ONNX graphs, 'int4' from an
    artifact it makes; the registry as it was afterwards."""
    monkeypatch.setattr(B, '_REGISTRY', dict(B._REGISTRY))
    sessions = []

    @B.register
    class Dummy(B.Backend):
        name, package = 'dummy', 'numpy'
        artifacts = {'fp32': B.ONNX, 'int4': 'dummy_int4'}

        def session(self, path, threads, precision):
            self.check(precision)
            sessions.append(DummySession(path, precision))
            return sessions[-1]

        def make(self, folder, precision, images):
            manifest = M.read_manifest(folder)
            with open(f'{folder}/segmentor.int4', 'w') as f:
                f.write(f'calibrated on {len(images)} images')
            manifest.artifacts['dummy_int4'] = dict(segmentor='segmentor.int4')
            M.write_manifest(folder, manifest)
            return manifest
    return sessions


def test_a_registered_backend_is_a_choice_of_the_command_line_and_runs_in_load(dummy, tmp_path):
    (tmp_path / 'model').mkdir()
    folder = str(deployed_folder(tmp_path / 'model', segmentation_manifest()))
    assert parse_args([folder, 'x.jpg', '--out', 'o', '--backend', 'dummy']).backend == 'dummy'
    assert parse_args([folder, 'x.jpg', '--out', 'o', '--precision', 'int4']).precision == 'int4'
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 32:, 1] = 200  # green right half: class 2 there (BGR: green is channel 1)
    labels = load(folder, backend='dummy')(image)
    assert dummy[-1].path.endswith('segmentor.onnx') and dummy[-1].precision == 'fp32'
    assert labels.shape == (48, 64) and (labels[:, 40:] == 2).all() and (labels[:, :24] != 2).all()


def test_a_backends_made_artifact_is_recorded_and_run_from(dummy, tmp_path, capsys):
    (tmp_path / 'model').mkdir()
    folder = str(deployed_folder(tmp_path / 'model', segmentation_manifest()))
    with pytest.raises(B.BackendError, match=re.escape(
            'has no dummy_int4 files, which dummy runs int4 from: make them with '
            f'`tools/deploy.py {folder} IMAGES --backend dummy --precision int4 --calibrate')):
        load(folder, backend='dummy', precision='int4')
    images = tmp_path / 'images'
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f'{i}.png'), np.full((40, 50, 3), 60 * i, np.uint8))
    code = main([folder, str(images), '--out', str(tmp_path / 'out'), '--backend', 'dummy',
                 '--precision', 'int4', '--calibrate', str(images)])
    assert code == 0, capsys.readouterr().err
    assert M.read_manifest(folder).artifacts == dict(dummy_int4=dict(segmentor='segmentor.int4'))
    assert {s.path.rpartition('/')[2] for s in dummy} == {'segmentor.int4'}
    assert sorted(p.name for p in (tmp_path / 'out').glob('*.png')) == ['0.png', '1.png', '2.png']
    assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['backend'] == 'dummy'


def test_a_precision_the_backend_lacks_names_the_backends_that_run_it():
    with pytest.raises(B.BackendError, match=re.escape(
            "onnxruntime runs ['fp32'], not 'bf16'; use --backend openvino.")):
        B.get_backend('onnxruntime').check('bf16')
    with pytest.raises(B.BackendError, match="Unknown backend 'tensorrt'; choose one of"):
        B.get_backend('tensorrt')


def test_the_deploy_benchmark_times_every_registered_backend(dummy):
    from mambaout_mm.deploy.benchmark import REFERENCE, default_subjects, subjects
    assert subjects()[0] == REFERENCE
    assert {'onnxruntime:fp32', 'openvino:int8', 'dummy:fp32', 'dummy:int4'} <= set(subjects())
    runs, left_out = default_subjects()
    assert {'dummy:fp32', 'dummy:int4'} <= set(runs) and set(runs) | set(left_out) == set(
        subjects())


def test_the_deploy_benchmark_table_is_relative_to_the_first_subject():
    from mambaout_mm.benchmark.timing import Timing
    from mambaout_mm.deploy.benchmark import markdown, table_rows
    timings = {s: Timing(s, 'infer', 'fp32', t) for s, t in
               (('pytorch:fp32', [2.0, 2.0, 2.2]), ('onnxruntime:fp32', [1.0, 1.0, 1.1]))}
    scores = {'pytorch:fp32': dict(mIoU=90.0), 'onnxruntime:fp32': dict(mIoU=89.5)}
    rows = table_rows(timings, scores, floor=0.5, first='pytorch:fp32')
    assert rows[1]['speedup'] == 2.0 and rows[1]['over_floor'] == 2.0
    assert rows[1]['mIoU_change'] == -0.5 and rows[0]['mIoU_change'] == 0.0
    assert markdown(rows).splitlines() == [
        '| backend:precision | median (s) | ± | speed-up | x floor | mIoU | change |',
        '|---|---|---|---|---|---|---|',
        '| pytorch:fp32 | 2.000 | 5% | 1.00x | 4.00 | 90.0 | +0.0 |',
        '| onnxruntime:fp32 | 1.000 | 5% | 2.00x | 2.00 | 89.5 | -0.5 |']


class FailingRequest:
    def __init__(self, message: str) -> None:
        self.message = message

    def infer(self, feed):
        raise RuntimeError(self.message)


def test_openvino_compiles_again_without_fused_subgraphs_when_their_kernel_fails(tmp_path,
                                                                                  capsys):
    """OpenVINO 2026.4's CPU plugin fails Mask2Former-T's graphs in bf16 on an AVX512-BF16 CPU
    ('Cannot initialize brgemm descriptor'): the session compiles the graph again without
    snippets, says so, and runs; any other error is raised as it is."""
    pytest.importorskip('openvino')
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper

    from mambaout_deploy.backends import openvino as OV
    shape = [1, 3, 4, 4]
    graph = helper.make_graph(
        [helper.make_node('Relu', ['image'], ['out'])], 'relu',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, shape)])
    path = str(tmp_path / 'relu.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)],
                                ir_version=8), path)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    session = OV.OpenVinoSession(OV.openvino_core(), path, None, 'fp32')
    session._request = FailingRequest('[CPU] Subgraph node: Cannot initialize brgemm descriptor')
    np.testing.assert_array_equal(session.run({'image': x})[0], np.maximum(x, 0))
    assert session._config['SNIPPETS_MODE'] == 'DISABLE'
    assert 'compiled again without fused subgraphs (SNIPPETS_MODE=DISABLE)' in \
        capsys.readouterr().err
    session._request = FailingRequest('Cannot initialize brgemm descriptor, again')
    with pytest.raises(RuntimeError, match='again'):  # once only
        session.run({'image': x})
    other = OV.OpenVinoSession(OV.openvino_core(), path, None, 'fp32')
    other._request = FailingRequest('out of memory')
    with pytest.raises(RuntimeError, match='out of memory'):
        other.run({'image': x})
    assert 'SNIPPETS_MODE' not in other._config


@pytest.mark.parametrize('op,scheme', [('Relu', None), ('Softmax', 'TRANSFORMER')])
def test_int8_quantises_a_graph_that_attends_by_the_transformer_scheme(op, scheme, tmp_path,
                                                                        monkeypatch):
    """A graph with a Softmax (DINO's and Mask2Former's attention) is quantised by NNCF's
    transformer scheme, a convolutional one by its default."""
    nncf = pytest.importorskip('nncf')
    onnx = pytest.importorskip('onnx')
    import cv2
    from onnx import TensorProto, helper

    from mambaout_deploy.backends import openvino as OV
    shape = [1, 3, 8, 8]
    graph = helper.make_graph(
        [helper.make_node(op, ['image'], ['out'])], op,
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, shape)])
    manifest = segmentation_manifest()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)],
                                ir_version=8), str(tmp_path / manifest.graphs['segmentor']))
    M.write_manifest(str(tmp_path), manifest)
    cv2.imwrite(str(tmp_path / 'calibration.png'), np.full((8, 8, 3), 60, np.uint8))
    chosen = []
    monkeypatch.setattr(nncf, 'quantize', lambda model, *a, **kw: chosen.append(
        kw['model_type']) or model)
    OV.OpenVino().make(str(tmp_path), 'int8', [str(tmp_path / 'calibration.png')])
    assert chosen == [scheme and nncf.ModelType[scheme]]
