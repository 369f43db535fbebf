"""configs/peers/: the ConvNeXt and Swin detectors the recipes beyond Tables 2 and 3 are compared
with, where mmdet ships none. Each is mmdet's recipe with another backbone: it builds, its neck
takes what that backbone returns, the rest of the recipe is the mmdet config it names, and its
parameter count is the published one (their MACs are counted in test_flops.py)."""
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mambaout_mm.evaluation.published_costs import published_cost
from mambaout_mm.utils.config import build_model, resolve_config_path

from .tools_helpers import REPO, unscoped

PEERS = sorted((REPO / 'configs' / 'peers').glob('*/*.py'))
#: what a peer may change in the mmdet config it inherits
CHANGED = {'backbone', 'neck', 'optim_wrapper', 'checkpoint_file', 'pretrained'}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('mmpretrain') is None,
    reason='the ConvNeXt peers need mmpretrain (tools/setup_env.sh installs it)')


def toolbox_base(path: Path) -> str:
    """The ``mmdet::`` config at the root of a peer config's ``_base_`` chain."""
    base = re.search(r"^_base_ = '([^']+)'", path.read_text(), re.M).group(1)
    return base if '::' in base else toolbox_base(path.parent / base)


@pytest.mark.parametrize('path', PEERS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_peer_builds_with_its_backbone_channels_and_published_parameters(path: Path):
    model = build_model(Config.fromfile(path)).eval()
    with torch.no_grad():
        maps = model.backbone(torch.rand(1, 3, 64, 64))
    assert model.neck.in_channels == [m.shape[1] for m in maps]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(published_cost(str(path))['params_m'], abs=0.5)  # rounded to 1M


@pytest.mark.parametrize('path', PEERS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_peer_keeps_the_rest_of_the_toolbox_recipe(path: Path):
    ours = unscoped(Config.fromfile(path).to_dict())
    theirs = unscoped(Config.fromfile(resolve_config_path(toolbox_base(path))).to_dict())
    for cfg, base in ((ours, theirs), (ours.pop('model'), theirs.pop('model'))):
        for key in (set(cfg) | set(base)) - CHANGED:
            assert cfg.get(key) == base.get(key), key
