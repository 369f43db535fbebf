"""Our test results next to the paper's Tables 2 and 3 (tools/report.py).

A run is a work dir holding ``test_metrics.json`` (and ``test_metrics_tta.json``) as
``tools/test.py`` writes them. :func:`load_run` reads one, :func:`report_tables` turns runs into
rows (ours, then the paper's), :func:`format_markdown`/:func:`format_csv` print them and
:func:`plot_report` draws AP box or mIoU against MACs like the paper's Figure 1(b).
"""
from __future__ import annotations

import csv
import io
import json
import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mmengine.config import Config

from .complexity import model_complexity
from ..utils.errors import UserError
from .paper import paper_recipe, paper_table
from ..utils.errors import RunSetupError
from ..utils.config import load_config
from ..utils.config import task as config_task

METRICS_FILE, TTA_FILE = 'test_metrics.json', 'test_metrics_tta.json'


class Column(NamedTuple):
    name: str       # column title
    key: str        # key in the metrics file
    tta: bool       # read from test_metrics_tta.json
    paper_key: str  # key in the paper's row
    scale: float    # to percent


COLUMNS = {
    'detection': tuple(Column(name, f'coco/{kind}_mAP{sfx}', False, f'{kind}_mAP{sfx}', 100.)
                 for kind, short in (('bbox', 'APb'), ('segm', 'APm'))
                 for sfx, name in (('', short), ('_50', f'{short}50'), ('_75', f'{short}75'))),
    'segmentation': (Column('mIoU SS', 'mIoU', False, 'mIoU_ss', 1.),
            Column('mIoU MS', 'mIoU', True, 'mIoU_ms', 1.)),
}
TITLES = {
    'detection': 'Detection and instance segmentation, AP (%): paper rows from Table 2 '
           '(Mask R-CNN 1x, COCO val2017)',
    'segmentation': 'Semantic segmentation, mIoU (%): paper rows from Table 3 (UperNet 160k, ADE20K val)',
}
PARAMS, MACS, PAPER = 'Params (M)', 'MACs (G)', 'Paper row'
#: decimals each column is printed with (metrics and their differences: 1)
DECIMALS = {PARAMS: 1, MACS: 0}


class ReportError(UserError, RuntimeError):
    """A work dir that cannot be reported."""


@dataclass
class Run:
    """One evaluated work dir: metrics in percent by column name (``None``: not measured)."""
    work_dir: str
    config: str        # as recorded by tools/test.py
    config_path: str   # the file read
    task: str          # 'detection' or 'segmentation'
    arch: str | None   # cfg.model.backbone.arch (None: not a MambaOut variant name)
    backbone: str      # display name, e.g. 'MambaOut-Tiny'
    metrics: dict[str, float | None] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)  # see run_recipe


def backbone_name(arch: Any, backbone_type: str = 'MambaOutBackbone') -> str:
    """``'MambaOut-Tiny'`` for ``'tiny'`` (the paper's naming), else the type or arch as given."""
    if backbone_type != 'MambaOutBackbone':
        return str(backbone_type)
    if not isinstance(arch, str):
        return 'MambaOut (custom)'
    return f'MambaOut-{arch.capitalize() if arch.isalpha() else arch}'


def _inner_dataset(dataset: Any) -> Any:
    """The dataset inside wrappers (``RepeatDataset``, ``ClassBalancedDataset``, ...)."""
    while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset


def run_recipe(cfg: Config, task: str) -> dict[str, Any]:
    """The values of a config that the paper's tables fix (the keys of ``paper_recipe(task)``)."""
    model, train_cfg = cfg.model, cfg.get('train_cfg') or {}
    recipe = dict(model=model.get('type'),
                  dataset=_inner_dataset(cfg.train_dataloader.dataset).get('type'))
    if task == 'detection':
        return dict(recipe, max_epochs=train_cfg.get('max_epochs'))
    size = model.get('data_preprocessor', {}).get('size')
    return dict(recipe, decode_head=model.get('decode_head', {}).get('type'),
                max_iters=train_cfg.get('max_iters'),
                crop_size=list(size) if size is not None else None)


def recipe_differences(run: Run) -> list[str]:
    """How a run's recipe differs from its table's, e.g. ``['max_epochs 36 (paper: 12)']``."""
    return [f'{key} {run.recipe.get(key)} (paper: {value})'
            for key, value in paper_recipe(run.task).items() if run.recipe.get(key) != value]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f'cannot read {path}: {err}') from None
    if not isinstance(result, dict) or not isinstance(result.get('metrics'), dict) \
            or 'config' not in result:
        raise ReportError(f'{path} is not a tools/test.py metrics file '
                          '(no "config" and "metrics").')
    return result


def resolve_config(recorded: str, work_dir: str | Path) -> str:
    """The config a metrics file names: as recorded (relative to the current dir) or, failing
    that, the copy mmengine dumped into the work dir."""
    if '::' in recorded or osp.isfile(recorded):
        return recorded
    dumped = Path(work_dir) / osp.basename(recorded)
    if dumped.is_file():
        return str(dumped)
    raise ReportError(f'{work_dir}: config {recorded} not found (from {Path.cwd()}) and no copy '
                      f'at {dumped}.')


def load_run(work_dir: str | Path) -> Run:
    """Read a work dir's metrics files and the config they name."""
    plain_path = Path(work_dir) / METRICS_FILE
    if not plain_path.is_file():
        raise ReportError(f'{plain_path} not found: evaluate first with '
                          f'`python tools/test.py CONFIG CHECKPOINT --work-dir {work_dir}`.')
    plain = _read_json(plain_path)
    tta_path = Path(work_dir) / TTA_FILE
    tta = _read_json(tta_path) if tta_path.is_file() else None

    config_path = resolve_config(plain['config'], work_dir)
    try:
        cfg = load_config(config_path)
        task = config_task(cfg)
    except RunSetupError as err:
        raise ReportError(f'{work_dir}: {err}') from None
    backbone = cfg.model.get('backbone', {})
    arch = backbone.get('arch')

    metrics = {}
    for col in COLUMNS[task]:
        source = tta if col.tta else plain
        value = source['metrics'].get(col.key) if source else None
        metrics[col.name] = None if value is None else round(value * col.scale, 1)
    return Run(work_dir=str(work_dir), config=plain['config'], config_path=config_path, task=task,
               arch=arch if isinstance(arch, str) else None,
               backbone=backbone_name(arch, backbone.get('type', '?')), metrics=metrics,
               recipe=run_recipe(cfg, task))


def _diff(ours: float | None, paper: float | None, decimals: int = 1) -> float | None:
    if ours is None or paper is None:
        return None
    return round(ours - paper, decimals) + 0.  # + 0. turns -0.0 into 0.0


def report_tables(runs: list[Run], macs: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Rows by task ('detection' first): our runs, with Params/MACs (``macs``, counted once per config)
    and the differences to the paper's row of the same variant, then every row of the paper's
    table. Cells are numbers or strings; ``None`` is "not available"."""
    complexity: dict[str, dict] = {}
    tables = {}
    for task in COLUMNS:
        ours = [run for run in runs if run.task == task]
        if not ours:
            continue
        paper = paper_table(task)
        rows = []
        for run in ours:
            row = {'Source': 'ours', 'Run': run.work_dir, 'Backbone': run.backbone, **run.metrics,
                   PARAMS: None, MACS: None}
            if macs:
                if run.config_path not in complexity:
                    complexity[run.config_path] = model_complexity(run.config_path)
                row[PARAMS] = complexity[run.config_path]['params_m']
                row[MACS] = complexity[run.config_path]['macs_g']
            reference = paper.get(run.backbone, {}) if run.arch else {}
            row[PAPER] = run.backbone if reference else None
            if reference and (differences := recipe_differences(run)):
                reference = {}  # another recipe: compared with nothing
                row[PAPER] = 'no paper row: ' + ', '.join(differences)
            for col in COLUMNS[task]:
                row[f'Δ {col.name}'] = _diff(run.metrics[col.name], reference.get(col.paper_key))
            for name, key in ((PARAMS, 'params_m'), (MACS, 'macs_g')):
                row[f'Δ {name}'] = _diff(row[name], reference.get(key), DECIMALS[name])
            rows.append(row)
        for name, reference in paper.items():
            rows.append({'Source': 'paper', 'Run': None, 'Backbone': name,
                         **{col.name: reference.get(col.paper_key) for col in COLUMNS[task]},
                         PARAMS: reference.get('params_m'), MACS: reference.get('macs_g')})
        tables[task] = rows
    return tables


def table_columns(task: str) -> list[str]:
    """The columns of a task's table, in order."""
    names = [col.name for col in COLUMNS[task]]
    return (['Source', 'Run', 'Backbone', *names, PARAMS, MACS, PAPER]
            + [f'Δ {n}' for n in (*names, PARAMS, MACS)])


def format_cell(column: str, value: Any) -> str:
    """Numbers with the column's decimals (differences signed), ``None`` as '-'."""
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not column.startswith('Δ '):
        return str(value)  # the paper's Params and MACs are whole numbers
    decimals = DECIMALS.get(column.removeprefix('Δ '), 1)
    return f'{value:+.{decimals}f}' if column.startswith('Δ ') else f'{value:.{decimals}f}'


def format_markdown(tables: dict[str, list[dict[str, Any]]]) -> str:
    """One markdown table per task, titled, with a note on what the columns mean."""
    blocks = []
    for task, rows in tables.items():
        columns = table_columns(task)
        lines = [f'### {TITLES[task]}', '',
                 '| ' + ' | '.join(columns) + ' |',
                 '|' + '|'.join('---' if c in ('Source', 'Run', 'Backbone', PAPER) else '---:'
                                for c in columns) + '|']
        lines += ['| ' + ' | '.join(format_cell(c, row.get(c)) for c in columns) + ' |'
                  for row in rows]
        lines += ['', 'Δ: ours minus the paper row of the same variant. Params and MACs of '
                      'ours are counted at the paper\'s input size (tools/get_flops.py); '
                      '"paper" rows are the paper\'s own numbers.']
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks) + '\n'


def format_csv(tables: dict[str, list[dict[str, Any]]]) -> str:
    """One CSV block per task (a 'Task' column first), separated by an empty line."""
    blocks = []
    for task, rows in tables.items():
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\n')
        columns = table_columns(task)
        writer.writerow(['Task', *columns])
        writer.writerows([task, *(format_cell(c, row.get(c)) for c in columns)] for row in rows)
        blocks.append(out.getvalue())
    return '\n'.join(blocks)


def plot_report(tables: dict[str, list[dict[str, Any]]], path: str | Path) -> None:
    """AP box (detection) / mIoU SS (segmentation) against MACs, one subplot per task: the paper's rows as
    labelled lines per model family, ours as labelled stars (in the style of Figure 1(b))."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for task, rows in tables.items():
        unplaced = [row['Run'] for row in rows if row['Source'] == 'ours' and row[MACS] is None]
        if unplaced:
            raise ReportError(f'cannot plot {", ".join(unplaced)}: no MACs (drop --no-macs).')
    fig = Figure(figsize=(7 * len(tables), 6), layout='constrained')
    FigureCanvasAgg(fig)
    for ax, (task, rows) in zip(fig.subplots(1, len(tables), squeeze=False)[0], tables.items()):
        metric = COLUMNS[task][0].name
        families: dict[str, list[dict]] = {}
        for row in rows:
            if row['Source'] == 'paper' and row[metric] is not None:
                families.setdefault(row['Backbone'].rsplit('-', 1)[0], []).append(row)
        peer_colors = iter(['tab:blue', 'tab:green', 'tab:purple', 'tab:orange', 'tab:brown',
                            'tab:cyan', 'tab:olive', 'tab:pink', 'tab:gray'] * 3)
        for family, members in families.items():
            members.sort(key=lambda r: r[MACS])
            mambaout = family == 'MambaOut'
            ax.plot([r[MACS] for r in members], [r[metric] for r in members],
                    marker='o', markersize=7 if mambaout else 5, linewidth=2 if mambaout else 1,
                    color='tab:red' if mambaout else next(peer_colors),
                    alpha=1 if mambaout else 0.7,
                    label=f'{family} (paper)', zorder=3 if mambaout else 2)
            for r in members:
                ax.annotate(r['Backbone'], (r[MACS], r[metric]), textcoords='offset points',
                            xytext=(4, 4), fontsize=7, color='0.3')
        ours = [row for row in rows if row['Source'] == 'ours' and row[metric] is not None]
        ax.scatter([r[MACS] for r in ours], [r[metric] for r in ours], marker='*', s=180,
                   color='black', label='ours', zorder=4)
        for r in ours:
            ax.annotate(f'{r["Backbone"]} ({Path(r["Run"]).name})', (r[MACS], r[metric]),
                        textcoords='offset points', xytext=(6, -12), fontsize=8,
                        fontweight='bold')
        ax.set_xlabel(MACS)
        ax.set_ylabel(f'{"AP box" if task == "detection" else "mIoU (single-scale)"} (%)')
        ax.set_title('Mask R-CNN 1x (COCO)' if task == 'detection' else 'UperNet 160k (ADE20K)')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=4,
                  frameon=False)
    fig.savefig(path, dpi=150)
