"""--part end2end: a femto model of every head (Mask R-CNN, Cascade Mask R-CNN, RetinaNet, DINO,
Mask2Former instance and semantic, UperNet) exported whole and checked against mmdet's and mmseg's
own inference on images; ``tools/deploy.py`` on the exported folders where torch cannot be
imported; the post-processing steps against mmcv's and mmdet's own functions; what is refused."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from mambaout_deploy import boxes as B
from mambaout_deploy.manifest import BoxCoder
from mambaout_mm.deploy.onnx_export import dynamo_exporter

from .tools_helpers import REPO, config, run_tool, tool

DET = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG = config('upernet/upernet_mambaout_femto_shapes.py')
exporter = pytest.mark.skipif(not dynamo_exporter(), reason='needs the dynamo exporter (torch '
                              '>= 2.6)')


def export_args(cfg: str, out, *extra: str) -> list[str]:
    return [tool('export_onnx.py'), cfg, '--part', 'end2end', '--out', str(out), '--shape', '128',
            '160', *extra]


def export(cfg: str, out, *extra: str) -> subprocess.CompletedProcess:
    return run_tool(*export_args(cfg, out, *extra), check=False)


def export_all(jobs: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Each job's export (:func:`export_args`), two at a time (tracing is mostly one core)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_tool, *args, check=False) for name, args in jobs.items()}
    return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope='module')
def deployed(tmp_path_factory):
    """Both femto models exported (random weights, low score threshold so detections exist)."""
    if not dynamo_exporter():
        pytest.skip('needs the dynamo exporter (torch >= 2.6)')
    root = tmp_path_factory.mktemp('deployed')
    procs = {'det': export(DET, root / 'det', '--score-thr', '0.05'),
             'seg': export(SEG, root / 'seg')}
    return root, procs


def test_mask_rcnn_exports_whole_and_agrees_with_mmdet_on_images(deployed):
    root, procs = deployed
    proc = procs['det']
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'deployed model agrees with mmdet on 4 images (' in proc.stdout
    compared = [int(n) for n in
                re.findall(r'jpg: (\d+) compared', proc.stdout)]
    assert len(compared) == 4 and min(compared) > 0  # detections were there to compare
    manifest = json.loads((root / 'det' / 'manifest.json').read_text())
    assert manifest['task'] == 'detection' and manifest['classes'][0] == 'circle'


def test_upernet_exports_whole_and_agrees_with_mmseg_on_images(deployed):
    root, procs = deployed
    assert procs['seg'].returncode == 0, procs['seg'].stderr[-3000:]
    assert 'deployed model agrees with mmseg on 4 images (' in procs['seg'].stdout


@exporter
def test_the_check_fails_when_the_deployed_model_differs(tmp_path):
    """A manifest whose normalisation is off by a little: the command's check says so."""
    from mambaout_mm.deploy.check import check_deployed
    from mambaout_mm.deploy.end2end import export_end2end
    from mambaout_mm.utils.config import build_model, load_config
    cfg = load_config(DET)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    export_end2end(model, cfg, str(tmp_path), (128, 160), {})
    assert not [p for c in check_deployed(model, cfg, str(tmp_path), threshold=0.05)
                for p in c.problems]
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    manifest['preprocess']['mean'] = [m + 8 for m in manifest['preprocess']['mean']]
    (tmp_path / 'manifest.json').write_text(json.dumps(manifest))
    problems = [p for c in check_deployed(model, cfg, str(tmp_path), threshold=0.05)
                for p in c.problems]
    assert problems and any('box off by' in p or 'no match' in p or 'not in mmdet' in p
                            for p in problems)


CASCADE = config('cascade_mask_rcnn/cascade_mask_rcnn_mambaout_femto_shapes.py')

#: the femto RetinaNet, its class scores spread (random class weights of std 1, not 0.01, so
#: that detections score above test_cfg.score_thr)
RETINANET = """_base_ = {base!r}
model = dict(bbox_head=dict(init_cfg=dict(
    type='Normal', layer='Conv2d', std=0.01,
    override=dict(type='Normal', name='retina_cls', std=1.0, bias_prob=0.01))))
"""


def noise_images(folder) -> str:
    """Three textured images: random weights give flat regions of the generated shapes images
    near-equal scores, where NMS keeps either of two boxes (see docs/deploy.md, exact ties)."""
    import cv2
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        noise = cv2.GaussianBlur(rng.uniform(0, 255, (60, 80, 3)).astype(np.float32), (5, 5), 1)
        cv2.imwrite(str(folder / f'noise{i}.jpg'),
                    cv2.resize(noise, (320, 240), interpolation=cv2.INTER_CUBIC).astype(np.uint8))
    return str(folder)


@pytest.fixture(scope='module')
def deployed_heads(tmp_path_factory):
    """Cascade Mask R-CNN, RetinaNet, DINO and Mask2Former (semantic and instance) exported
    (random weights), checked on textured images (DINO's and Mask2Former's every detection: their
    random class scores are ~0.01 and ~0.2)."""
    if not dynamo_exporter():
        pytest.skip('needs the dynamo exporter (torch >= 2.6)')
    root = tmp_path_factory.mktemp('heads')
    images = noise_images(root / 'images')
    (root / 'retinanet.py').write_text(RETINANET.format(
        base=config('retinanet/retinanet_mambaout_femto_shapes.py')))
    check = ('--score-thr', '0.05', '--check-images', images)
    procs = export_all({
        'cascade': export_args(CASCADE, root / 'cascade', *check),
        'retinanet': export_args(str(root / 'retinanet.py'), root / 'retinanet', *check),
        'dino': export_args(config('dino/dino_mambaout_femto_shapes.py'), root / 'dino',
                            '--score-thr', '0', '--check-images', images,
                            '--cfg-options', 'model.test_cfg.max_per_img=200'),
        'mask2former': export_args(config('mask2former/mask2former_mambaout_femto_shapes.py'),
                                   root / 'mask2former', '--check-images', images),
        'mask2former_instance': export_args(
            config('mask2former/mask2former_mambaout_femto_shapes_instance.py'),
            root / 'mask2former_instance', '--score-thr', '0', '--check-images', images)})
    return root, procs


@pytest.mark.parametrize('model,head,graphs', [
    ('cascade', 'rcnn',
     ['dense', *(f'{h}{i}' for i in range(3) for h in ('box_head', 'mask_head'))]),
    ('retinanet', 'retinanet', ['dense']),
    ('dino', 'dino', ['detector']),
    ('mask2former', 'segmentor', ['segmentor']),
    ('mask2former_instance', 'mask2former', ['detector'])])
def test_every_head_exports_whole_and_agrees_with_its_toolbox(deployed_heads, model, head,
                                                               graphs):
    root, procs = deployed_heads
    proc = procs[model]
    assert proc.returncode == 0, proc.stderr[-3000:]
    toolbox = 'mmseg' if head == 'segmentor' else 'mmdet'
    assert f'deployed model agrees with {toolbox} on 3 images (' in proc.stdout
    compared = [int(n) for n in re.findall(r'jpg: (\d+) compared', proc.stdout)]
    assert len(compared) == 3 and min(compared) > 0
    manifest = json.loads((root / model / 'manifest.json').read_text())
    assert list(manifest['graphs']) == graphs and manifest['head'] == head
    if model == 'cascade':  # each stage's own coder, as the config's three box heads
        assert [s['coder']['stds'] for s in manifest['rcnn']['stages']] == [
            [0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]


def test_a_model_whose_classes_differ_from_the_datasets_is_refused(tmp_path):
    proc = export(CASCADE, tmp_path / 'c', '--cfg-options',
                  'test_dataloader.dataset.metainfo.classes=[circle,square,triangle]')
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'The dataset names 3 classes and the model predicts 4' in proc.stderr
    assert 'Traceback' not in proc.stderr


#: ``tools/deploy.py`` run as a script in a process where the training stack's imports fail, as
#: on a machine without it
BLOCK_TRAINING_STACK = '''
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'mmcv', 'mmdet', 'mmseg', 'mmengine',
                                  'mambaout_mm'):
            raise ImportError(f'{name} is not installed here')
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
    code = 0
except SystemExit as exit:
    code = exit.code
assert not {'torch', 'mmcv', 'mmdet'} & set(sys.modules)
sys.exit(code)
'''


def run_runtime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', BLOCK_TRAINING_STACK, tool('deploy.py'), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def run_on_shapes(folder, task: str, out, num_val: int) -> dict:
    """The deployed ``folder`` run by the runtime (torch not importable) on a generated
    validation set of ``task`` with ``--eval``; its ``metrics.json``."""
    from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes
    if task == 'detection':
        root = make_coco_shapes(out / 'coco', num_train=1, num_val=num_val)['root']
        images, labels = f'{root}/val2017', f'{root}/annotations/instances_val2017.json'
    else:
        root = make_ade_shapes(out / 'ade', num_train=1, num_val=num_val)['root']
        images, labels = f'{root}/images/validation', f'{root}/annotations/validation'
    proc = run_runtime(str(folder), images, '--out', str(out / 'out'), '--eval', labels)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / 'out' / 'metrics.json').read_text())


def test_the_runtime_runs_where_torch_cannot_be_imported(deployed, tmp_path):
    root, procs = deployed
    assert procs['det'].returncode == 0 and procs['seg'].returncode == 0
    det = tmp_path / 'det'
    metrics = run_on_shapes(root / 'det', 'detection', det, num_val=3)
    assert metrics['images'] == 3 and 0 <= metrics['metrics']['segm_mAP'] <= 1
    results = json.loads((det / 'out' / 'detections.json').read_text())
    assert results and {'bbox', 'segmentation', 'score', 'category_id'} <= set(results[0])
    assert len(list((det / 'out').glob('*_pred.jpg'))) == 3

    seg = tmp_path / 'seg'
    assert 0 <= run_on_shapes(root / 'seg', 'segmentation', seg, num_val=2)['metrics'][
        'mIoU'] <= 1
    assert len(list((seg / 'out').glob('ADE_val_*[0-9].png'))) == 2


@pytest.mark.parametrize('head', ['cascade', 'retinanet', 'dino', 'mask2former_instance'])
def test_every_detector_runs_where_torch_cannot_be_imported(deployed_heads, head, tmp_path):
    root, procs = deployed_heads
    assert procs[head].returncode == 0
    metrics = run_on_shapes(root / head, 'detection', tmp_path, num_val=2)['metrics']
    assert 0 <= metrics['bbox_mAP'] <= 1
    masks = head in ('cascade', 'mask2former_instance')  # RetinaNet and DINO predict none
    assert ('segm_mAP' in metrics) == masks
    results = json.loads((tmp_path / 'out' / 'detections.json').read_text())
    assert results and ('segmentation' in results[0]) == masks


def test_mask2former_semantic_runs_where_torch_cannot_be_imported(deployed_heads, tmp_path):
    root, procs = deployed_heads
    assert procs['mask2former'].returncode == 0
    metrics = run_on_shapes(root / 'mask2former', 'segmentation', tmp_path, num_val=2)
    assert 0 <= metrics['metrics']['mIoU'] <= 1


def test_mask2former_panoptic_is_refused_naming_what_to_set(tmp_path):
    proc = export(config('mask2former/mask2former_mambaout_femto_shapes_instance.py'),
                  tmp_path / 'm', '--cfg-options', 'model.test_cfg.panoptic_on=True')
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'with instance results only' in proc.stderr and 'panoptic_on=False' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_openvino_int8_is_made_as_an_ir_artifact_and_run_from_it(deployed, tmp_path):
    """``--calibrate`` quantises the backbone's graph into the manifest's OpenVINO IR artifact,
    which int8 then runs (NNCF probes for torch, so this one runs where torch is installed)."""
    pytest.importorskip('nncf')
    from mambaout_mm.datasets import make_ade_shapes
    root, procs = deployed
    assert procs['seg'].returncode == 0
    folder = tmp_path / 'seg'
    shutil.copytree(root / 'seg', folder)
    ade = make_ade_shapes(tmp_path / 'ade', num_train=3, num_val=2)['root']
    proc = subprocess.run(
        [sys.executable, '-m', 'mambaout_deploy', str(folder), f'{ade}/images/validation',
         '--out', str(tmp_path / 'out'), '--backend', 'openvino', '--precision', 'int8',
         '--calibrate', f'{ade}/images/training', '--eval', f'{ade}/annotations/validation'],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((folder / 'manifest.json').read_text())
    assert manifest['artifacts'] == {'openvino_ir_int8': {'segmentor': 'segmentor.int8.xml'}}
    assert (folder / 'segmentor.int8.xml').is_file() and (folder / 'segmentor.int8.bin').is_file()
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert metrics['precision'] == 'int8' and 0 <= metrics['metrics']['mIoU'] <= 1


def test_the_runtime_names_a_folder_that_is_not_a_deployed_model(tmp_path):
    proc = run_runtime(str(tmp_path), str(tmp_path), '--out', str(tmp_path / 'o'))
    assert proc.returncode == 1
    assert 'has no manifest.json' in proc.stderr and 'Traceback' not in proc.stderr


def random_boxes(n: int, seed: int, size: float = 200.) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(2, 60, (n, 2))], 1).astype(np.float32)


def test_nms_keeps_what_mmcvs_batched_nms_keeps():
    from mmcv.ops import batched_nms
    boxes = random_boxes(600, 0)
    scores = np.random.default_rng(1).random(600).astype(np.float32)
    groups = np.random.default_rng(2).integers(0, 5, 600)
    _, expected = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                              torch.from_numpy(groups), dict(type='nms', iou_threshold=0.5))
    kept = B.batched_nms(boxes, scores, groups, 0.5)
    np.testing.assert_array_equal(kept, expected.numpy())
    np.testing.assert_array_equal(B.batched_nms(boxes, scores, groups, 0.5, 40), kept[:40])


def test_box_decoding_and_anchors_are_mmdets():
    from mmdet.models.task_modules import AnchorGenerator, DeltaXYWHBBoxCoder
    gen = AnchorGenerator(strides=[8], ratios=[0.5, 1.0, 2.0], scales=[8])
    expected = gen.grid_priors([(5, 7)], device='cpu')[0].numpy()
    np.testing.assert_allclose(B.grid_anchors(gen.base_anchors[0].numpy(), 8, 5, 7), expected)
    coder = DeltaXYWHBBoxCoder(target_means=[0.] * 4, target_stds=[0.1, 0.1, 0.2, 0.2])
    priors = random_boxes(50, 3)
    deltas = np.random.default_rng(4).normal(0, 2, (50, 4)).astype(np.float32)
    want = coder.decode(torch.from_numpy(priors), torch.from_numpy(deltas),
                        max_shape=(120, 150)).numpy()
    got = B.decode(priors, deltas, BoxCoder([0.] * 4, [0.1, 0.1, 0.2, 0.2], 16 / 1000),
                   (120, 150))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_pasted_masks_are_mmdets():
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    rng = np.random.default_rng(5)
    probs = rng.random((6, 28, 28)).astype(np.float32)
    boxes = random_boxes(6, 6, size=80)
    boxes[0, 2] = boxes[0, 0]  # zero width
    want, (ys, xs) = _do_paste_mask(torch.from_numpy(probs)[:, None], torch.from_numpy(boxes),
                                    100, 120, skip_empty=True)
    full = np.zeros((6, 100, 120), bool)
    full[:, ys, xs] = want.numpy() >= 0.5
    got = B.paste_masks(probs, boxes, 100, 120, 0.5)
    assert (got != full).sum() <= 2  # float rounding at the threshold, at most a pixel or two


def test_dino_with_padding_is_refused_naming_what_to_set():
    """DINO's graph has no padding mask: a config that pads is refused before the export."""
    from mambaout_mm.deploy.end2end import check_supported
    from mambaout_mm.deploy.onnx_export import ExportError
    from mambaout_mm.utils.config import build_model, load_config
    path = config('dino/dino_mambaout_femto_shapes.py')
    assert check_supported(build_model(load_config(path))) == 'dino'
    padded = load_config(path, {'model.data_preprocessor.pad_size_divisor': 32})
    with pytest.raises(ExportError, match='pad_size_divisor=1'):
        check_supported(build_model(padded))


def test_the_worst_over_images_is_the_largest_error_and_the_smallest_agreement():
    from mambaout_mm.deploy.check import ImageCheck, worst_over
    checks = [ImageCheck('a', worst=dict(box_px=0.5, score=1e-4, mask_iou=0.99)),
              ImageCheck('b', worst=dict(box_px=0.2, score=3e-4, mask_iou=0.97))]
    assert worst_over(checks) == dict(box_px=0.5, score=3e-4, mask_iou=0.97)
    assert worst_over([ImageCheck('c', worst=dict(pixels_equal=0.9)),
                       ImageCheck('d', worst=dict(pixels_equal=0.8))]) == dict(pixels_equal=0.8)


def test_a_segmentor_that_infers_in_windows_is_refused_naming_what_to_set():
    """The deployed segmentor runs one graph over the whole image: a sliding-window config (the
    640 UperNet's) is refused before the export, naming the setting that makes it exportable."""
    from mambaout_mm.deploy.end2end import check_supported
    from mambaout_mm.deploy.onnx_export import ExportError
    from mambaout_mm.utils.config import build_model, load_config
    slide = {'model.test_cfg': dict(mode='slide', crop_size=(64, 64), stride=(48, 48))}
    with pytest.raises(ExportError, match=r"'slide' windows.*model\.test_cfg\.mode=whole"):
        check_supported(build_model(load_config(SEG, slide)))
    whole = {'model.test_cfg': dict(mode='whole')}
    assert check_supported(build_model(load_config(SEG, whole))) == 'segmentor'


@pytest.mark.parametrize('size', [(37, 53), (300, 410)])
def test_maps_of_many_channels_resize_as_f_interpolate(size):
    """ADE20K's 150 classes (or more) resize in one call, as F.interpolate (bilinear, half-pixel):
    OpenCV 5 resizes at most 128 channels at a time, OpenCV 4 512."""
    import torch.nn.functional as F

    from mambaout_deploy.image import resize_maps
    maps = np.random.default_rng(0).normal(size=(120, 160, 600)).astype(np.float32)
    want = F.interpolate(torch.from_numpy(maps).permute(2, 0, 1)[None], size=size,
                         mode='bilinear', align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(resize_maps(maps, size), want, rtol=1e-4, atol=1e-4)
