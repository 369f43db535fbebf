"""tools/report.py: our test metrics next to the paper's Tables 2 and 3."""
import csv
import io
import json
import runpy
import sys

import pytest
from mmengine.config import Config
from PIL import Image

from mambaout_mm.evaluation import report
from mambaout_mm.evaluation.paper import paper_row, paper_table
from mambaout_mm.evaluation.report import (
    ReportError,
    format_csv,
    format_markdown,
    load_run,
    report_tables,
)

from .tools_helpers import REPO, config, run_tool, tool

DET_TINY = config('mask_rcnn/mambaout_tiny_1x.py')
DET_FEMTO = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG_SMALL = config('upernet/mambaout_small_160k.py')
SEG_FEMTO = config('upernet/upernet_mambaout_femto_shapes.py')

DET_METRICS = {'coco/bbox_mAP': 0.4523, 'coco/bbox_mAP_50': 0.6711, 'coco/bbox_mAP_75': 0.4968,
               'coco/segm_mAP': 0.4087, 'coco/segm_mAP_50': 0.6402, 'coco/segm_mAP_75': 0.4449,
               'coco/bbox_mAP_s': 0.28, 'coco/bbox_mAP_m': 0.49, 'coco/bbox_mAP_l': 0.59}
DET_KEYS = {'APb': 'bbox_mAP', 'APb50': 'bbox_mAP_50', 'APb75': 'bbox_mAP_75',
            'APm': 'segm_mAP', 'APm50': 'segm_mAP_50', 'APm75': 'segm_mAP_75'}
SEG_SS = {'aAcc': 83.12, 'mIoU': 49.26, 'mAcc': 60.31}
SEG_MS = {'aAcc': 83.55, 'mIoU': 50.71, 'mAcc': 61.02}


def write_run(work_dir, config_path, metrics, tta_metrics=None):
    """A work dir as tools/test.py leaves it (test_metrics.json, test_metrics_tta.json)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for name, values, tta in (('test_metrics.json', metrics, False),
                              ('test_metrics_tta.json', tta_metrics, True)):
        if values is not None:
            (work_dir / name).write_text(json.dumps(dict(
                config=str(config_path), checkpoint=str(work_dir / 'iter_160000.pth'), tta=tta,
                metrics={k: float(v) for k, v in values.items()}), indent=2))
    return work_dir


@pytest.fixture(scope='module')
def work_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('runs')
    return dict(
        det_tiny=write_run(root / 'det_tiny', DET_TINY, DET_METRICS),
        det_femto=write_run(root / 'det_femto', DET_FEMTO,
                            {k: v / 2 for k, v in DET_METRICS.items()}),
        seg_small=write_run(root / 'seg_small', SEG_SMALL, SEG_SS, SEG_MS),
        seg_femto=write_run(root / 'seg_femto', SEG_FEMTO, {'aAcc': 95.0, 'mIoU': 71.26}))


@pytest.fixture(scope='module')
def tables(work_dirs):
    return report_tables([load_run(d) for d in work_dirs.values()], macs=False)


def ours(rows, run):
    [row] = [r for r in rows if r['Source'] == 'ours' and r['Run'].endswith(run)]
    return row


def test_detection_numbers_and_differences_to_the_paper(tables):
    row = ours(tables['detection'], 'det_tiny')
    paper = paper_row('detection', 'MambaOut-Tiny')
    assert (row['Backbone'], row['Paper row']) == ('MambaOut-Tiny', 'MambaOut-Tiny')
    for column, key in DET_KEYS.items():
        value = round(DET_METRICS[f'coco/{key}'] * 100, 1)
        assert row[column] == value
        assert row[f'Δ {column}'] == pytest.approx(value - paper[key], abs=1e-9)
    assert row['Params (M)'] is row['MACs (G)'] is row['Δ MACs (G)'] is None  # macs=False


def test_segmentation_single_and_multi_scale(tables):
    row = ours(tables['segmentation'], 'seg_small')
    paper = paper_row('segmentation', 'MambaOut-Small')
    assert (row['mIoU SS'], row['mIoU MS']) == (round(SEG_SS['mIoU'], 1), round(SEG_MS['mIoU'], 1))
    assert row['Δ mIoU SS'] == pytest.approx(round(SEG_SS['mIoU'], 1) - paper['mIoU_ss'])
    assert row['Δ mIoU MS'] == pytest.approx(round(SEG_MS['mIoU'], 1) - paper['mIoU_ms'])


def test_runs_without_a_paper_row_or_tta_show_dashes(tables):
    text = format_markdown(tables)
    det_femto = next(line for line in text.splitlines() if 'det_femto' in line)
    cells = [c.strip() for c in det_femto.strip('|').split('|')]
    columns = report.table_columns('detection')
    assert cells[columns.index('Backbone')] == 'MambaOut-Femto'
    assert cells[columns.index('APb')] == f"{DET_METRICS['coco/bbox_mAP'] * 50:.1f}"
    assert all(cells[i] == '-' for i, c in enumerate(columns)
               if c == 'Paper row' or c.startswith('Δ '))

    seg_femto = next(line for line in text.splitlines() if 'seg_femto' in line)
    cells = [c.strip() for c in seg_femto.strip('|').split('|')]
    columns = report.table_columns('segmentation')
    assert cells[columns.index('mIoU SS')] == '71.3'
    assert cells[columns.index('mIoU MS')] == '-'  # no test_metrics_tta.json
    assert cells[columns.index('Δ mIoU SS')] == '-'


def test_a_run_of_another_recipe_is_compared_with_no_paper_row(tmp_path):
    """A Tiny backbone in a 36-epoch detector or at 640 crops is not the paper's Tiny row."""
    three_x = tmp_path / 'mask_rcnn_3x.py'
    three_x.write_text(f"_base_ = {DET_TINY!r}\ntrain_cfg = dict(max_epochs=36)\n")
    crop_640 = tmp_path / 'upernet_640.py'
    crop_640.write_text(f"_base_ = {SEG_SMALL!r}\n"
                        "model = dict(data_preprocessor=dict(size=(640, 640)))\n")
    tables = report_tables([load_run(write_run(tmp_path / 'det_3x', three_x, DET_METRICS)),
                            load_run(write_run(tmp_path / 'seg_640', crop_640, SEG_SS, SEG_MS))],
                           macs=False)
    det, seg = ours(tables['detection'], 'det_3x'), ours(tables['segmentation'], 'seg_640')
    assert det['Paper row'] == 'no paper row: max_epochs 36 (paper: 12)'
    assert seg['Paper row'] == 'no paper row: crop_size [640, 640] (paper: [512, 512])'
    assert det['APb'] == round(DET_METRICS['coco/bbox_mAP'] * 100, 1)
    assert all(row[c] is None for row in (det, seg) for c in row if c.startswith('Δ '))


def test_paper_rows_follow_ours_in_separate_tables(tables):
    assert list(tables) == ['detection', 'segmentation']
    for task in ('detection', 'segmentation'):
        sources = [r['Source'] for r in tables[task]]
        assert sources == sorted(sources)  # 'ours' first, then 'paper'
        paper_rows = {r['Backbone']: r for r in tables[task] if r['Source'] == 'paper'}
        assert list(paper_rows) == list(paper_table(task))
    assert paper_rows['Swin-B']['mIoU MS'] == paper_row('segmentation', 'Swin-B')['mIoU_ms']
    text = format_markdown(tables)
    assert text.count('| paper | - | ConvNeXt-T |') == 2
    assert text.index('Table 2') < text.index('det_tiny') < text.index('Table 3') \
        < text.index('seg_small')


def test_csv(tables):
    blocks = format_csv(tables).strip().split('\n\n')
    assert len(blocks) == 2
    det = list(csv.DictReader(io.StringIO(blocks[0])))
    assert list(det[0]) == ['Task', *report.table_columns('detection')]
    tiny = next(r for r in det if r['Run'].endswith('det_tiny'))
    paper = paper_row('detection', 'MambaOut-Tiny')
    assert tiny['Task'] == 'detection' and tiny['APb'] == '45.2'
    assert float(tiny['Δ APb']) == pytest.approx(45.2 - paper['bbox_mAP'])
    swin_b = next(r for r in det if r['Backbone'] == 'Swin-B')
    assert (swin_b['Source'], swin_b['APb'], swin_b['APb50']) == ('paper', '46.9', '-')
    seg = list(csv.DictReader(io.StringIO(blocks[1])))
    assert {r['Task'] for r in seg} == {'segmentation'}


def test_params_and_macs_counted_once_per_config(work_dirs, tmp_path, monkeypatch):
    calls = []

    def fake(config_path):
        calls.append(config_path)
        return dict(params_m=44.94, macs_g=263.4)

    monkeypatch.setattr(report, 'model_complexity', fake)
    again = write_run(tmp_path / 'det_tiny_again', DET_TINY, DET_METRICS)
    rows = report_tables([load_run(work_dirs['det_tiny']), load_run(again)])['detection']
    assert calls == [DET_TINY]
    paper = paper_row('detection', 'MambaOut-Tiny')
    row = rows[0]
    assert (row['Params (M)'], row['MACs (G)']) == (44.94, 263.4)
    assert row['Δ Params (M)'] == pytest.approx(round(44.94 - paper['params_m'], 1))
    assert row['Δ MACs (G)'] == round(263.4 - paper['macs_g'])


def test_config_falls_back_to_the_copy_in_the_work_dir(tmp_path, monkeypatch):
    work_dir = write_run(tmp_path / 'run', 'elsewhere/mambaout_femto_shapes.py',
                         {'aAcc': 90.0, 'mIoU': 60.0})
    Config.fromfile(SEG_FEMTO).dump(str(work_dir / 'mambaout_femto_shapes.py'))  # as mmengine does
    run = load_run(work_dir)
    assert (run.task, run.arch, run.config_path) == ('segmentation', 'femto',
                                                     str(work_dir / 'mambaout_femto_shapes.py'))

    (work_dir / 'mambaout_femto_shapes.py').unlink()
    with pytest.raises(ReportError, match='elsewhere/mambaout_femto_shapes.py not found'):
        load_run(work_dir)


def test_missing_metrics_file_says_how_to_make_it(tmp_path):
    with pytest.raises(ReportError, match=r'test_metrics.json not found.*tools/test.py'):
        load_run(tmp_path)


def test_cli_markdown_and_csv_without_macs(work_dirs):
    dirs = [str(work_dirs['det_tiny']), str(work_dirs['seg_femto'])]
    out = run_tool(tool('report.py'), *dirs, '--no-macs', '--format', 'csv').stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:5] == ['Task', 'Source', 'Run', 'Backbone', 'APb']
    assert any(r[:2] == ['segmentation', 'ours'] and r[2] == dirs[1] for r in rows)

    proc = run_tool(tool('report.py'), dirs[0], '--no-macs', '--plot', 'x.png', check=False)
    assert proc.returncode != 0 and 'drop --no-macs' in proc.stderr
    assert not (REPO / 'x.png').exists()


def test_plot_writes_a_png(work_dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, 'model_complexity',
                        lambda path: dict(params_m=45.0, macs_g=260.0 if 'mask_rcnn' in path
                                          else 1000.0))
    png = tmp_path / 'report.png'
    monkeypatch.setattr(sys, 'argv', ['report.py', *map(str, work_dirs.values()), '--plot',
                                      str(png)])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(tool('report.py'), run_name='__main__')
    assert exited.value.code == 0
    out = capsys.readouterr()
    assert '| ours |' in out.out and 'Plot written to' in out.err
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(png) as image:
        assert image.format == 'PNG' and image.width > 0 and image.height > 0


DINO_TINY = config('dino/dino_mambaout_tiny_4scale_12e.py')
RETINANET_SMALL = config('retinanet/retinanet_mambaout_small_1x.py')
BOX_METRICS = {k: v for k, v in DET_METRICS.items() if k.startswith('coco/bbox')}


def test_a_head_familys_run_is_beside_its_peers_published_results(tmp_path):
    """Found by the family its config derives from (mmdet's R50 DINO, Swin-T RetinaNet) and the
    metrics its evaluator reports (box AP only), not by a list of families."""
    from mambaout_mm.evaluation.published_costs import published_results
    tables = report_tables([load_run(write_run(tmp_path / 'dino_t', DINO_TINY, BOX_METRICS)),
                            load_run(write_run(tmp_path / 'retina_s', RETINANET_SMALL,
                                               BOX_METRICS))], macs=False)
    dino, retina = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', \
        'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py'
    assert list(tables) == [dino, retina]  # no paper table: neither is Table 2's recipe
    assert report.table_columns(dino, tables[dino]) == [
        'Source', 'Run', 'Backbone', 'APb', 'APb50', 'APb75', 'Params (M)', 'MACs (G)',
        'Published in']
    row = ours(tables[dino], 'dino_t')
    assert (row['Backbone'], row['APb']) == ('MambaOut-Tiny', 45.2)
    peers = {r['Backbone']: r for r in tables[dino] if r['Source'] == 'published'}
    assert list(peers) == [p['model'] for p in published_results(dino)['rows']]
    assert (peers['TransNeXt-Tiny, 4-scale']['APb'], peers['TransNeXt-Tiny, 4-scale']['APb50']) \
        == (55.1, None)
    assert ours(tables[retina], 'retina_s')['Backbone'] == 'MambaOut-Small'
    text = format_markdown(tables)
    assert text.index('DINO, 12 epochs') < text.index('dino_t') < text.index('RetinaNet 1x') \
        < text.index('PoolFormer-S12')
    assert '| published | - | PoolFormer-S36 | 39.5 | - | - |' in text
    blocks = format_csv(tables).strip().split('\n\n')
    assert [b.splitlines()[1].split(',')[0] for b in blocks] == [dino, retina]


def test_the_family_is_found_from_mmengines_copy_of_the_config(tmp_path, monkeypatch):
    """The recorded config is gone (another checkout): the flattened copy in the work dir and the
    packaged config of the same name still place the run."""
    work_dir = write_run(tmp_path / 'run', 'configs/dino/dino_mambaout_tiny_4scale_12e.py',
                         BOX_METRICS)
    Config.fromfile(DINO_TINY).dump(str(work_dir / 'dino_mambaout_tiny_4scale_12e.py'))
    monkeypatch.chdir(tmp_path)
    run = load_run(work_dir)
    assert run.config_path == str(work_dir / 'dino_mambaout_tiny_4scale_12e.py')
    assert run.table == 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'


def test_metrics_the_paper_has_not_get_a_table_of_their_own(tmp_path):
    """A panoptic evaluator (PQ) with no published peers: its own table, not Table 2's."""
    panoptic = tmp_path / 'panoptic_femto.py'
    panoptic.write_text(f"_base_ = {DET_FEMTO!r}\n"
                        "test_evaluator = dict(_delete_=True, type='CocoPanopticMetric')\n")
    run = load_run(write_run(tmp_path / 'pq', panoptic,
                             {'coco_panoptic/PQ': 41.5, 'coco_panoptic/SQ': 80.1,
                              'coco_panoptic/RQ': 50.2}))
    assert [c.name for c in run.columns] == ['PQ', 'SQ', 'RQ']
    tables = report_tables([run], macs=False)
    [(table, rows)] = tables.items()
    assert table == 'panoptic_femto.py' and rows[0]['PQ'] == 41.5
    assert 'no published results' in format_markdown(tables)
