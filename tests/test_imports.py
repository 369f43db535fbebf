"""Importing the package needs mmengine only; the backbone builds from mmdet and mmseg configs
with the other toolbox missing."""
import json
import subprocess
import sys

import pytest

SCRIPT = """
import importlib, json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as if it were not installed
import mambaout_mm
loaded = sorted({{m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}}
                & {{'mmdet', 'mmseg', 'mmcv'}})
built = None
if {scope!r}:
    from mmengine.registry import init_default_scope
    init_default_scope({scope!r})
    registry = importlib.import_module({scope!r} + '.registry').MODELS
    backbone = registry.build(dict(type='MambaOutBackbone', arch='femto', out_indices=(1, 3)))
    built = type(backbone).__name__, backbone.out_indices
print(json.dumps(dict(loaded_by_import=loaded, built=built)))
"""


def run(blocked: tuple[str, ...], scope: str | None) -> dict:
    proc = subprocess.run([sys.executable, '-c', SCRIPT.format(blocked=blocked, scope=scope)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_loads_neither_toolbox():
    assert run((), None) == dict(loaded_by_import=[], built=None)


@pytest.mark.parametrize('scope,blocked', [('mmdet', ('mmseg',)), ('mmseg', ('mmdet',))])
def test_backbone_builds_from_one_toolbox_without_the_other(scope, blocked):
    result = run(blocked, None)
    assert result['loaded_by_import'] == []
    result = run(blocked, scope)
    assert result['built'] == ['MambaOutBackbone', [1, 3]]
