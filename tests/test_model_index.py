"""The model index OpenMMLab's tools read (``tools/model_index.py``): the committed metafiles are
what the configs and data files give, list each config of the rule once and nothing else, say whose
results they carry, and ``mim`` finds them in this checkout's editable install (the README's
``.venv``); tests/test_packaging.py checks the same in a wheel."""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mambaout_mm.evaluation.paper import paper_row
from mambaout_mm.evaluation.published_costs import published_cost

from .tools_helpers import CPU_ONLY, OFFLINE, REPO, run_tool, tool

spec = importlib.util.spec_from_file_location('model_index', tool('model_index.py'))
model_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_index)

INDEX = REPO / 'mambaout_mm' / '.mim' / 'model-index.yml'
#: The configs of the paper's Tables 2 and 3, by the row whose results they carry.
PAPER_RECIPES = {f'configs/{family}/mambaout_{size}_{schedule}.py':
                 (task, f'MambaOut-{size.title()}')
                 for family, schedule, task in (('mask_rcnn', '1x', 'detection'),
                                                ('upernet', '160k', 'segmentation'))
                 for size in ('tiny', 'small', 'base')}


def committed_entries() -> dict[str, dict]:
    """The committed metafiles' entries by config, read as mim reads them (through the index)."""
    entries: dict[str, dict] = {}
    for metafile in yaml.safe_load(INDEX.read_text())['Import']:
        for model in yaml.safe_load((INDEX.parent / metafile).read_text())['Models']:
            assert model['Config'] not in entries, f'{model["Config"]} listed twice'
            entries[model['Config']] = model
    return entries


def mim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``mim ARGS`` as a user runs it, in this environment, offline and on the CPU."""
    env = {**{k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}, **OFFLINE, **CPU_ONLY}
    return subprocess.run([sys.executable, '-m', 'mim', *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope='module')
def editable_install() -> Path:
    """This checkout's package folder, where its editable install points mmengine and mim."""
    dist = importlib.metadata.distribution('mambaout-mm')
    package = REPO / 'mambaout_mm'
    first = (dist.read_text('top_level.txt') or '').splitlines()[0]
    assert first == str(package), (
        f'mambaout-mm is not installed editable from this checkout (top_level.txt starts with '
        f'{first!r}): pip install --no-deps -e {REPO}')
    return package


def test_the_committed_index_is_what_the_tool_writes():
    proc = run_tool(tool('model_index.py'), '--check')
    assert re.search(r'model index up to date: \d+ families', proc.stdout)


def test_the_check_names_a_config_without_entry_and_an_entry_without_config(tmp_path):
    configs, index = tmp_path / 'configs', tmp_path / 'model-index.yml'
    (configs / 'mask_rcnn').mkdir(parents=True)
    (configs / 'peers').mkdir()
    shutil.copy(REPO / 'configs' / 'mask_rcnn' / 'mambaout_tiny_1x.py', configs / 'mask_rcnn')
    shutil.copy(REPO / 'configs' / 'mask_rcnn' / 'mambaout_tiny_1x.py', configs / 'peers')
    for path, text in model_index.expected_files(configs, index).items():
        path.write_text(text)
    assert model_index.stale_files(configs, index) == []
    assert not (configs / 'peers' / 'metafile.yml').exists()  # peers are not a family
    metafile = configs / 'mask_rcnn' / 'metafile.yml'
    written = yaml.safe_load(metafile.read_text())['Models']
    assert [m['Config'] for m in written] == ['configs/mask_rcnn/mambaout_tiny_1x.py']

    shutil.copy(configs / 'mask_rcnn' / 'mambaout_tiny_1x.py', configs / 'mask_rcnn' / 'extra.py')
    assert model_index.stale_files(configs, index) == [str(metafile)]  # a config without entry
    proc = run_tool(tool('model_index.py'), '--check', '--configs', str(configs), '--index',
                    str(index), check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'error: the model index is not what the configs' in proc.stderr
    assert str(metafile) in proc.stderr and 'python tools/model_index.py' in proc.stderr

    (configs / 'mask_rcnn' / 'extra.py').unlink()
    (configs / 'retinanet').mkdir()
    (configs / 'retinanet' / 'metafile.yml').write_text(metafile.read_text())
    assert model_index.stale_files(configs, index) == [
        f'{configs / "retinanet" / "metafile.yml"} (no family: remove it)']
    (configs / 'mask_rcnn' / 'mambaout_tiny_1x.py').unlink()  # entries without their config
    assert set(model_index.stale_files(configs, index)) == {
        str(index), str(metafile) + ' (no family: remove it)',
        f'{configs / "retinanet" / "metafile.yml"} (no family: remove it)'}


def test_every_config_has_one_entry_and_every_entry_a_config():
    entries = committed_entries()
    listed = {f'configs/{family}/{path.name}'
              for family, paths in model_index.listed_configs(REPO / 'configs').items()
              for path in paths}
    assert sorted(listed - set(entries)) == [], 'configs without an entry'
    assert sorted(set(entries) - listed) == [], 'entries without a config'
    every = {p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')}
    assert sorted(c for c in every - listed if not c.startswith('configs/peers/')) == [], \
        'configs the rule leaves out (only configs/peers/ is)'
    names = [entry['Name'] for entry in entries.values()]
    assert len(set(names)) == len(names)


def test_results_are_the_papers_for_its_recipes_and_costs_those_published():
    entries = committed_entries()
    with_results = {config for config, entry in entries.items() if 'Results' in entry}
    assert with_results == set(PAPER_RECIPES)  # nothing else: no run was measured here
    for config, (task, backbone) in PAPER_RECIPES.items():
        entry, row = entries[config], paper_row(task, backbone)
        metrics = {k: v for result in entry['Results'] for k, v in result['Metrics'].items()}
        assert metrics == ({'box AP': row['bbox_mAP'], 'mask AP': row['segm_mAP']}
                           if task == 'detection' else
                           {'mIoU': row['mIoU_ss'], 'mIoU(ms)': row['mIoU_ms']})
        assert "the paper's figures, not trained or measured" in entry['Metadata']['Results Source']
    for config, entry in entries.items():
        cost, meta = published_cost(str(REPO / config)), entry['Metadata']
        if cost is None:
            assert not {'Params (M)', 'MACs (G)'} & set(meta), config
        else:
            assert (meta['Params (M)'], meta['MACs (G)']) == (cost['params_m'], cost['macs_g'])
        assert 'Weights' not in entry  # no trained weights exist; the backbone's are named
        assert entry['Paper']['URL'] == 'https://arxiv.org/abs/2405.07992'


def test_mim_search_lists_every_config(editable_install, tmp_path):
    proc = mim('search', 'mambaout_mm', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = re.findall(r'^config id: (\S+)$', proc.stdout, flags=re.M)
    assert sorted(shown) == sorted(e['Name'] for e in committed_entries().values())
    ids = mim('search', 'mambaout_mm', '--valid-config', cwd=tmp_path).stdout.strip()
    assert sorted(ast.literal_eval(ids.splitlines()[-1])) == sorted(shown)


def test_every_listed_config_has_a_file_name_of_its_own():
    """``mim train mambaout_mm NAME.py`` looks a config up by its file name anywhere in the
    package (mim 0.3.9), so a name two configs share reaches neither; mmdet's names are unique."""
    everywhere = [p.name for p in (REPO / 'configs').rglob('*.py')]
    shared = sorted(f'{family}/{path.name}'
                    for family, paths in model_index.listed_configs(REPO / 'configs').items()
                    for path in paths if everywhere.count(path.name) > 1)
    assert shared == [], 'file names mim train cannot tell apart'


def test_mim_train_finds_the_packaged_config_and_tool(editable_install, tmp_path):
    proc = mim('train', 'mambaout_mm', 'mambaout_tiny_1x.py', '--gpus', '0', '--work-dir',
               str(tmp_path / 'work'), cwd=tmp_path)
    config = REPO / 'configs' / 'mask_rcnn' / 'mambaout_tiny_1x.py'
    assert f'will use {config} instead' in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f'{editable_install}/.mim/tools/train.py {config}' in proc.stdout
    # our tool ran on that config: it stops on what this machine lacks (no GPU, data, network)
    assert proc.returncode != 0 and 'problems stop this run' in proc.stderr
    assert 'download/model/mambaout_tiny.pth' in proc.stderr


def test_mmengine_reads_packaged_configs_in_the_editable_install(editable_install, tmp_path):
    """``get_config`` and a user's ``_base_`` (tests/test_packaging.py: the same from a wheel)."""
    (tmp_path / 'mine.py').write_text("_base_ = 'mambaout_mm::upernet/mambaout_tiny_160k.py'\n"
                                      'model = dict(backbone=dict(drop_path_rate=0.1))\n')
    script = ('import mambaout_mm\n'
              'from mmengine.config import Config\n'
              'from mmengine.hub import get_config\n'
              "packaged = get_config('mambaout_mm::mask_rcnn/mambaout_tiny_1x.py')\n"
              "mine = Config.fromfile('mine.py')\n"
              'print(packaged.filename, packaged.model.backbone.arch, '
              'mine.model.backbone.drop_path_rate, mine.model.decode_head.type)\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    filename, arch, drop_path, head = proc.stdout.split()[-4:]
    assert Path(filename) == editable_install / '.mim/configs/mask_rcnn/mambaout_tiny_1x.py'
    assert (arch, drop_path, head) == ('tiny', '0.1', 'UPerHead')
