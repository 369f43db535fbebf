"""Our test results next to the paper's Tables 2 and 3, or next to the published results of a
head family's peers (tools/report.py).

A run is a work dir holding ``test_metrics.json`` (and ``test_metrics_tta.json``) as
``tools/test.py`` writes them. :func:`load_run` reads one, :func:`report_tables` turns runs into
rows (ours, then the paper's or the peers'), :func:`format_markdown`/:func:`format_csv` print them
and :func:`plot_report` draws AP box or mIoU against MACs like the paper's Figure 1(b).

Where a run goes: a config whose family (:func:`.heads.toolbox_base`: DINO, RetinaNet, ...) has
published peer results (``published_costs.json``) gets that family's table, with the metrics its
evaluators report (:func:`.heads.config_metrics`: box AP, mask AP, PQ, mIoU); so does a config
whose metrics the paper's tables do not have (PQ); every other run the paper's table of its task.
"""
from __future__ import annotations

import csv
import io
import json
import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config

from ..utils.config import load_config
from ..utils.config import task as config_task
from ..utils.errors import RunSetupError, UserError
from .complexity import model_complexity
from .heads import Metric, coco_metrics, config_metrics, toolbox_base
from .paper import paper_recipe, paper_table
from .published_costs import config_id, published_results

METRICS_FILE, TTA_FILE = 'test_metrics.json', 'test_metrics_tta.json'


Column = Metric  # title, key in the metrics file, from the --tta file, key in a row, to percent

#: The columns of the paper's tables (Table 2's and Table 3's metrics).
COLUMNS = {
    'detection': coco_metrics(['bbox', 'segm']),
    'segmentation': (Column('mIoU SS', 'mIoU', False, 'mIoU_ss', 1.),
                     Column('mIoU MS', 'mIoU', True, 'mIoU_ms', 1.)),
}
TITLES = {
    'detection': 'Detection and instance segmentation, AP (%): paper rows from Table 2 '
                 '(Mask R-CNN 1x, COCO val2017)',
    'segmentation': 'Semantic segmentation, mIoU (%): paper rows from Table 3 '
                    '(UperNet 160k, ADE20K val)',
}
PARAMS, MACS, PAPER, PUBLISHED = 'Params (M)', 'MACs (G)', 'Paper row', 'Published in'
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
    table: str = ''    # the task of a paper table, or the family of a table of peers
    columns: tuple[Column, ...] = ()  # the metrics, in the table's order


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


def run_family(recorded: str, config_path: str) -> str | None:
    """The family (toolbox config at the root of the ``_base_`` chain) of a run's config: from
    the config file, or, when only mmengine's flattened copy is left, from the packaged config of
    the same name (``mambaout_mm::FAMILY/NAME.py``)."""
    for candidate in (config_path, recorded, f'mambaout_mm::{config_id(recorded)}'):
        try:
            family = toolbox_base(candidate)
        except (RunSetupError, OSError, SyntaxError):
            continue
        if family:
            return family
    return None


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

    family = run_family(plain['config'], config_path)
    reported = config_metrics(cfg)
    if published_results(family) or not {c.name for c in reported} & \
            {c.name for c in COLUMNS[task]}:
        table, columns = family or config_id(config_path), reported
    else:
        table, columns = task, COLUMNS[task]
    metrics = {}
    for col in columns:
        source = tta if col.tta else plain
        value = source['metrics'].get(col.key) if source else None
        metrics[col.name] = None if value is None else round(value * col.scale, 1)
    return Run(work_dir=str(work_dir), config=plain['config'], config_path=config_path, task=task,
               arch=arch if isinstance(arch, str) else None,
               backbone=backbone_name(arch, backbone.get('type', '?')), metrics=metrics,
               recipe=run_recipe(cfg, task), table=table, columns=columns)


def _diff(ours: float | None, paper: float | None, decimals: int = 1) -> float | None:
    if ours is None or paper is None:
        return None
    return round(ours - paper, decimals) + 0.  # + 0. turns -0.0 into 0.0


def report_tables(runs: list[Run], macs: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Rows by table: the paper's tasks first ('detection', 'segmentation'), then each family
    with peer results (or with metrics the paper's tables lack) in the order of the runs. A
    paper table has our runs, with Params/MACs (``macs``, counted once per config) and the
    differences to the paper's row of the same variant, then every row of the paper's table; a
    family's table our runs, then the peers' published rows with their source. Cells are numbers
    or strings; ``None`` is "not available"."""
    complexity: dict[str, dict] = {}

    def ours_row(run: Run, columns: tuple[Column, ...]) -> dict[str, Any]:
        row = {'Source': 'ours', 'Run': run.work_dir, 'Backbone': run.backbone,
               **{col.name: run.metrics.get(col.name) for col in columns},
               PARAMS: None, MACS: None}
        if macs:
            if run.config_path not in complexity:
                complexity[run.config_path] = model_complexity(run.config_path)
            row[PARAMS] = complexity[run.config_path]['params_m']
            row[MACS] = complexity[run.config_path]['macs_g']
        return row

    tables = {}
    families = list(dict.fromkeys(run.table for run in runs if run.table not in COLUMNS))
    for table in [*COLUMNS, *families]:
        ours = [run for run in runs if run.table == table]
        if not ours:
            continue
        if table not in COLUMNS:
            columns = tuple({col.name: col for run in ours for col in run.columns}.values())
            rows = [{**ours_row(run, columns), PUBLISHED: None} for run in ours]
            for peer in (published_results(table) or {}).get('rows', []):
                rows.append({'Source': 'published', 'Run': None, 'Backbone': peer['model'],
                             **{col.name: peer.get(col.row_key) for col in columns},
                             PARAMS: peer.get('params_m'), MACS: peer.get('macs_g'),
                             PUBLISHED: peer['source']})
            tables[table] = rows
            continue
        task = table
        paper = paper_table(task)
        rows = []
        for run in ours:
            row = ours_row(run, COLUMNS[task])
            reference = paper.get(run.backbone, {}) if run.arch else {}
            row[PAPER] = run.backbone if reference else None
            if reference and (differences := recipe_differences(run)):
                reference = {}  # another recipe: compared with nothing
                row[PAPER] = 'no paper row: ' + ', '.join(differences)
            for col in COLUMNS[task]:
                row[f'Δ {col.name}'] = _diff(run.metrics[col.name], reference.get(col.row_key))
            for name, key in ((PARAMS, 'params_m'), (MACS, 'macs_g')):
                row[f'Δ {name}'] = _diff(row[name], reference.get(key), DECIMALS[name])
            rows.append(row)
        for name, reference in paper.items():
            rows.append({'Source': 'paper', 'Run': None, 'Backbone': name,
                         **{col.name: reference.get(col.row_key) for col in COLUMNS[task]},
                         PARAMS: reference.get('params_m'), MACS: reference.get('macs_g')})
        tables[task] = rows
    return tables


def table_columns(table: str, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """The columns of a table, in order: a task's paper table, or (given its ``rows``) a
    family's table, whose metrics are those of its runs."""
    if table in COLUMNS:
        names = [col.name for col in COLUMNS[table]]
        return (['Source', 'Run', 'Backbone', *names, PARAMS, MACS, PAPER]
                + [f'Δ {n}' for n in (*names, PARAMS, MACS)])
    names = [c for c in (rows or [{}])[0] if c not in ('Source', 'Run', 'Backbone', PARAMS, MACS,
                                                        PUBLISHED)]
    return ['Source', 'Run', 'Backbone', *names, PARAMS, MACS, PUBLISHED]


def table_title(table: str) -> str:
    """A paper table's title, a family's published title, or what a family's table holds."""
    if table in TITLES:
        return TITLES[table]
    results = published_results(table)
    return (f'{results["title"]}: published rows of the peers of {table}' if results
            else f'Runs of {table} (no published results to compare with)')


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
    for table, rows in tables.items():
        columns = table_columns(table, rows)
        lines = [f'### {table_title(table)}', '',
                 '| ' + ' | '.join(columns) + ' |',
                 '|' + '|'.join('---' if c in ('Source', 'Run', 'Backbone', PAPER, PUBLISHED)
                                else '---:' for c in columns) + '|']
        lines += ['| ' + ' | '.join(format_cell(c, row.get(c)) for c in columns) + ' |'
                  for row in rows]
        lines += ['', ('Δ: ours minus the paper row of the same variant. ' if table in COLUMNS
                       else '') + 'Params and MACs of ours are counted at the papers\' input '
                  'size (tools/get_flops.py); "paper" and "published" rows are their authors\' '
                  'own numbers.']
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks) + '\n'


def format_csv(tables: dict[str, list[dict[str, Any]]]) -> str:
    """One CSV block per table (a 'Task' column first: the task, or the family), separated by an
    empty line."""
    blocks = []
    for table, rows in tables.items():
        out = io.StringIO()
        writer = csv.writer(out, lineterminator='\n')
        columns = table_columns(table, rows)
        writer.writerow(['Task', *columns])
        writer.writerows([table, *(format_cell(c, row.get(c)) for c in columns)] for row in rows)
        blocks.append(out.getvalue())
    return '\n'.join(blocks)


def plot_report(tables: dict[str, list[dict[str, Any]]], path: str | Path) -> None:
    """The table's first metric (AP box, mIoU SS, PQ) against MACs, one subplot per table: the
    paper's rows (and published rows with MACs) as labelled lines per model family, ours as
    labelled stars (in the style of Figure 1(b))."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for rows in tables.values():
        unplaced = [row['Run'] for row in rows if row['Source'] == 'ours' and row[MACS] is None]
        if unplaced:
            raise ReportError(f'cannot plot {", ".join(unplaced)}: no MACs (drop --no-macs).')
    fig = Figure(figsize=(7 * len(tables), 6), layout='constrained')
    FigureCanvasAgg(fig)
    for ax, (task, rows) in zip(fig.subplots(1, len(tables), squeeze=False)[0], tables.items()):
        metric = table_columns(task, rows)[3]
        families: dict[str, list[dict]] = {}
        for row in rows:
            if row['Source'] != 'ours' and row[metric] is not None and row[MACS] is not None:
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
                    label=f'{family} ({members[0]["Source"]})', zorder=3 if mambaout else 2)
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
        ax.set_ylabel(f'{metric} (%)')
        ax.set_title({'detection': 'Mask R-CNN 1x (COCO)', 'segmentation': 'UperNet 160k (ADE20K)'}
                     .get(task, table_title(task).split(':')[0]))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=4,
                  frameon=False)
    fig.savefig(path, dpi=150)
