"""The benchmark's machinery on a tiny input (no timing assertions)."""
import torch

from mambaout_mm.benchmark import (build_subjects, feature_agreement, markdown, run_benchmark,
                                   to_rows)


def test_timm_subject_runs_with_our_weights():
    models = build_subjects(['mambaout_t', 'timm_mambaout_t'])
    assert feature_agreement(models['mambaout_t'], models['timm_mambaout_t'],
                             torch.randn(1, 3, 64, 64)) < 1e-5


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
