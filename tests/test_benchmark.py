"""The benchmark's machinery on a tiny input (no timing assertions)."""
import json

import pytest
import torch

from mambaout_mm.benchmark import subjects
from mambaout_mm.benchmark.memory import peak_memory
from mambaout_mm.benchmark.precision import default_dtypes
from mambaout_mm.benchmark.run import run_benchmark
from mambaout_mm.benchmark.steps import make_step
from mambaout_mm.benchmark.subjects import build_subjects, default_shape, feature_agreement
from mambaout_mm.benchmark.tables import markdown, to_rows
from mambaout_mm.deploy.onnx_export import dynamo_exporter
from mambaout_mm.models import cpu_kernels
from mambaout_mm.models.mambaout import GatedCNNBlock
from mambaout_mm.utils import cpu_support
from mambaout_mm.utils.errors import ConfigError

from .tools_helpers import config, run_tool, tool


def test_timm_subject_runs_with_our_weights():
    models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
    assert feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                             torch.randn(1, 3, 64, 64)) < 1e-5


def test_reference_subject_runs_the_plain_formula():
    models = build_subjects(['mambaout_t', 'mambaout_t_ref'])
    backends = {name: {b.backend for b in m.modules() if isinstance(b, GatedCNNBlock)}
              for name, m in models.items()}
    assert backends == {'mambaout_t': {'auto'}, 'mambaout_t_ref': {'reference'}}


@pytest.mark.parametrize('dtype', ['fp16', 'tf32'])
def test_gpu_precisions_asked_for_on_a_cpu_are_refused(dtype):
    with pytest.raises(ValueError, match=f"'{dtype}'.*GPU only"):
        run_benchmark(['mambaout_t'], [1, 3, 32, 32], ['infer'], ['fp32', dtype])


def test_bf16_is_benchmarked_by_default_only_where_it_is_native(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(cpu_support, 'bf16_native', lambda native=native: native)
        assert default_dtypes('cpu') == (['fp32', 'bf16'] if native else ['fp32'])


def test_rows_hold_every_subject_mode_and_dtype():
    dtypes = default_dtypes('cpu')  # bf16 where it is native: emulated it takes minutes here
    results = run_benchmark(['mambaout_t', 'timm_mambaout_t'], [1, 3, 64, 64],
                            ['infer', 'train'], dtypes, warmup=1, repeats=2, memory=False)
    rows = to_rows(results, batch=1)
    assert {(r['subject'], r['mode'], r['dtype']) for r in rows} == {
        (s, m, d) for s in ('mambaout_t', 'timm_mambaout_t') for m in ('infer', 'train')
        for d in dtypes}
    for r in rows:
        assert r['repeats'] == 2 and r['images_per_s'] == pytest.approx(1 / r['median_s'],
                                                                      rel=1e-2)
        if r['subject'] == 'mambaout_t':
            assert r['speedup_of_first'] == 1.0
    assert markdown(rows, 'mambaout_t').count('\n') == len(rows) + 1


def test_cli_writes_json_markdown_and_plot(tmp_path):
    """The command line end to end, with mmdet's ResNet (whose train() returns None) and timm."""
    run_tool(tool('benchmark.py'), '--subjects', 'mambaout_t', 'timm_mambaout_t', 'resnet50',
             '--shape', '1', '3', '64', '64', '--modes', 'infer', '--dtypes', 'fp32',
             '--warmup', '0', '--repeats', '1', '--no-memory', '--json', str(tmp_path / 'b.json'),
             '--markdown', str(tmp_path / 'b.md'), '--plot', str(tmp_path / 'b.png'), '--floor')
    result = json.loads((tmp_path / 'b.json').read_text())
    rows = result['rows']
    assert [r['subject'] for r in rows] == ['mambaout_t', 'timm_mambaout_t', 'resnet50']
    # --floor: ResNet-50's 4.1 GMACs at 224x224 scale with the pixels; no network beats its floor
    macs = {r['subject']: r['macs_g'] for r in rows}
    assert macs['resnet50'] == pytest.approx(4.1 * (64 / 224) ** 2, rel=0.1)
    assert macs['mambaout_t'] == pytest.approx(macs['timm_mambaout_t'], rel=0.05)
    assert all(r['x_floor'] > 0.8 for r in rows)
    assert cpu_support.isa() in result['machine']  # the ISA and the kernels' GEMMs are named
    assert f'{cpu_kernels.isa_kernels().name} GEMMs' in result['machine']
    assert (tmp_path / 'b.md').read_text().count('| infer | fp32 |') == 3
    assert (tmp_path / 'b.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


DET = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG = config('upernet/upernet_mambaout_femto_shapes.py')


def test_default_input_follows_the_subjects():
    assert default_shape(['mambaout_t', 'convnext_t']) == [2, 3, 512, 512]
    assert default_shape([SEG]) == [2, 3, 512, 512]
    assert default_shape([SEG, DET]) == [1, 3, 800, 1280]


def test_unknown_subject_names_the_choices():
    with pytest.raises(ConfigError, match="'convnext_x'.*mambaout_t.*config files"):
        build_subjects(['convnext_x'])


@pytest.mark.parametrize('name', ['mambaout_t_onnxruntime', f'{SEG}:openvino'])
def test_an_exported_subject_needs_the_input_size_it_is_exported_at(name):
    with pytest.raises(ValueError, match='exported at the input size: give a shape'):
        build_subjects([name])


@pytest.mark.parametrize('config,shape', [(DET, [1, 3, 96, 128]), (SEG, [2, 3, 64, 64])])
def test_config_subjects_run_whole_models(config, shape):
    """Detector and segmentor from configs: predict and a training step, fp32 and (where it is
    native) CPU bf16."""
    dtypes = default_dtypes('cpu')
    results = run_benchmark([config], shape, ['infer', 'train'], dtypes, warmup=0, repeats=1,
                            memory=False)
    assert [(r.name, r.mode, r.dtype) for r in results] == [
        (config, m, d) for m in ('infer', 'train') for d in dtypes]
    assert all(len(r.times_s) == 1 and r.median == r.times_s[0] > 1e-4 for r in results)


def test_config_training_step_updates_the_whole_model():
    model = build_subjects([DET])[DET]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    make_step(model, torch.zeros(1, 3, 96, 128), 'train', 'fp32')()
    changed = {n.split('.')[1] for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    assert {'backbone', 'neck', 'rpn_head', 'roi_head'} <= changed


def test_config_subject_peak_memory_in_a_fresh_process():
    # what one step adds at its peak: more than its input image (1x3x64x64 floats), and far less
    # than the whole process's resident set (torch alone holds hundreds of MB)
    input_mb = 3 * 64 * 64 * 4 / 2**20
    assert input_mb < peak_memory(SEG, 'infer', 'fp32', [1, 3, 64, 64], 'cpu') < 256


@pytest.mark.skipif(not dynamo_exporter(), reason='needs the dynamo ONNX exporter (torch >= 2.6)')
@pytest.mark.parametrize('backend', subjects.deploy_backends())
def test_a_backbone_run_by_each_deployment_backend_is_timed_for_fp32_inference_only(backend):
    """(Its agreement with PyTorch is the export's check, tests/test_onnx_export.py.)"""
    pytest.importorskip(backend)
    exported = f'mambaout_f_{backend}'
    results = run_benchmark(['mambaout_f', exported], [1, 3, 64, 64], ['infer', 'train'],
                            ['fp32'], warmup=0, repeats=1, memory=False)
    assert [(r.name, r.mode) for r in results] == [
        ('mambaout_f', 'infer'), (exported, 'infer'), ('mambaout_f', 'train')]


@pytest.mark.skipif(not dynamo_exporter(), reason='needs the dynamo ONNX exporter (torch >= 2.6)')
@pytest.mark.parametrize('backend', subjects.deploy_backends())
def test_a_segmentors_network_runs_in_pytorch_and_in_each_deployment_backend_alike(backend):
    pytest.importorskip(backend)
    shape = [1, 3, 64, 64]
    names = [f'{SEG}:network', f'{SEG}:{backend}']
    models = build_subjects(names, shape)
    x = torch.rand(*shape) * 255
    with torch.inference_mode():
        logits = models[names[0]](x)
    (exported,) = models[names[1]](x)
    assert logits.shape == (1, models[names[0]].network.segmentor.decode_head.num_classes, 64, 64)
    torch.testing.assert_close(torch.from_numpy(exported), logits, rtol=1e-3, atol=1e-4)
    results = run_benchmark(names, shape, ['infer', 'train'], ['fp32'], warmup=0, repeats=1,
                            memory=False)
    assert [(r.name, r.mode) for r in results] == [(n, 'infer') for n in names]
