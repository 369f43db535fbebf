"""The benchmark's machinery on a tiny input (no timing assertions)."""
import json

import torch

from mambaout_mm.benchmark import (build_subjects, feature_agreement, markdown, run_benchmark,
                                   to_rows)
from mambaout_mm.mambaout import GatedCNNBlock

from .tools_helpers import run_tool, tool


def test_timm_subject_runs_with_our_weights():
    models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
    assert feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                             torch.randn(1, 3, 64, 64)) < 1e-5


def test_reference_subject_runs_the_plain_formula():
    models = build_subjects(['mambaout_t', 'mambaout_t_ref'])
    flags = {name: [b.use_cpu_kernels for b in m.modules() if isinstance(b, GatedCNNBlock)]
             for name, m in models.items()}
    assert len(flags['mambaout_t_ref']) == 18
    assert all(flags['mambaout_t']) and not any(flags['mambaout_t_ref'])


def test_rows_hold_every_subject_mode_and_dtype():
    results = run_benchmark(['mambaout_t', 'timm_mambaout_t'], [1, 3, 64, 64],
                            ['infer', 'train'], ['fp32', 'bf16', 'fp16'], warmup=1, repeats=2,
                            memory=False)
    rows = to_rows(results, batch=1)
    assert {(r['subject'], r['mode'], r['dtype']) for r in rows} == {
        (s, m, d) for s in ('mambaout_t', 'timm_mambaout_t') for m in ('infer', 'train')
        for d in ('fp32', 'bf16')}  # fp16 is skipped without a GPU
    for r in rows:
        assert r['repeats'] == 2 and r['median_s'] > 0
        if r['subject'] == 'mambaout_t':
            assert r['speedup_of_first'] == 1.0
    assert markdown(rows, 'mambaout_t').count('\n') == len(rows) + 1


def test_cli_writes_json_markdown_and_plot(tmp_path):
    """The command line end to end, with mmdet's ResNet (whose train() returns None) and timm."""
    run_tool(tool('benchmark.py'), '--subjects', 'mambaout_t', 'timm_mambaout_t', 'resnet50',
             '--shape', '1', '3', '64', '64', '--modes', 'infer', '--dtypes', 'fp32',
             '--warmup', '0', '--repeats', '1', '--no-memory', '--json', str(tmp_path / 'b.json'),
             '--markdown', str(tmp_path / 'b.md'), '--plot', str(tmp_path / 'b.png'))
    rows = json.loads((tmp_path / 'b.json').read_text())['rows']
    assert [r['subject'] for r in rows] == ['mambaout_t', 'timm_mambaout_t', 'resnet50']
    assert (tmp_path / 'b.md').read_text().count('| infer | fp32 |') == 3
    assert (tmp_path / 'b.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
