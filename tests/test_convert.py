"""Checkpoint conversion (tools/convert_checkpoint.py): classifier <-> dense-prediction backbone."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from mambaout_mm import CheckpointMismatchError, MambaOut, MambaOutBackbone
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.weights.checkpoint import to_official_layout
from mambaout_mm.weights.convert import (
    convert_checkpoint,
    default_target,
    to_backbone_checkpoint,
    to_official_classifier,
)

from .tools_helpers import run_tool, tool

TRUNK = ('downsample_layers.', 'stages.')


def trunk(state_dict):
    return {k: v for k, v in state_dict.items() if k.startswith(TRUNK)}


def assert_same_tensors(actual, expected):
    assert actual.keys() == expected.keys() and actual
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k], rtol=0, atol=0)


def backbone_from(path):
    backbone = MambaOutBackbone('femto', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    return backbone


@pytest.fixture(scope='module')
def detector_checkpoint(tmp_path_factory):
    """A trained-detector stand-in: mmengine meta + state_dict with backbone.* and neck.* keys."""
    trained = randomize_(MambaOutBackbone('femto'), seed=5).state_dict()
    path = tmp_path_factory.mktemp('det') / 'epoch_12.pth'
    torch.save({'meta': {'epoch': 12, 'iter': 1000}, 'state_dict': {
        **{f'backbone.{k}': v for k, v in trained.items()},
        'neck.lateral_convs.0.conv.weight': torch.randn(8, 48, 1, 1),
        'neck.lateral_convs.0.conv.bias': torch.randn(8)}}, path)
    return path, trained


def test_official_to_backbone_loads_through_init_cfg(tmp_path, official_femto):
    src, state_dict = official_femto
    dst = tmp_path / 'femto_backbone.pth'
    report = convert_checkpoint(src, dst)
    assert (report['to'], report['arch'], report['source_layout']) == ('backbone', 'femto',
                                                                      'official')
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['arch'] == 'femto' and saved['meta']['source'] == str(src)
    assert all(k.startswith('backbone.') for k in saved['state_dict'])
    assert not any(k.startswith(('backbone.norm.', 'backbone.head.')) for k in saved['state_dict'])
    assert_same_tensors(saved['state_dict'],
                        {f'backbone.{k}': v for k, v in trunk(state_dict).items()})
    assert_same_tensors(trunk(backbone_from(dst).state_dict()), trunk(state_dict))
    assert any('Dropped the classification head (8 tensors' in m for m in report['messages'])


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_timm_to_backbone(tmp_path, suffix):
    reference = randomize_(timm.create_model('mambaout_femto'), seed=6).state_dict()
    src = tmp_path / f'timm_femto{suffix}'
    if suffix == '.safetensors':
        save_file(reference, str(src))
    else:
        torch.save(reference, src)
    dst = tmp_path / 'femto_backbone.pth'
    report = convert_checkpoint(src, dst)
    assert (report['to'], report['source_layout']) == ('backbone', 'timm')
    assert_same_tensors(trunk(backbone_from(dst).state_dict()),
                        trunk(to_official_layout(reference)))


def test_detector_to_official_loads_missing_only_the_head(tmp_path, detector_checkpoint):
    src, trained = detector_checkpoint
    dst = tmp_path / 'femto_official.pth'
    report = convert_checkpoint(src, dst)
    assert (report['to'], report['arch'], report['source_layout']) == ('official', 'femto',
                                                                      'mmengine')
    converted = torch.load(dst, weights_only=True)
    assert_same_tensors(converted, trunk(trained))  # no neck, no output norms, no wrapper

    model = MambaOut('femto', num_classes=10)
    result = model.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(
        k for k in model.state_dict() if k.startswith(('norm.', 'head.')))
    assert_same_tensors(trunk(model.state_dict()), trunk(trained))

    text = '\n'.join(report['messages'])
    assert 'Dropped 2 tensors outside the backbone' in text
    assert 'Dropped the backbone output norms (8 tensors: norm0, norm1, norm2, norm3)' in text
    assert 'no final norm (norm.*) and no classification head (head.*)' in text


def test_detector_to_backbone_keeps_output_norms(tmp_path, detector_checkpoint):
    src, trained = detector_checkpoint
    dst = tmp_path / 'femto_backbone.pth'
    convert_checkpoint(src, dst, to='backbone')
    assert_same_tensors(backbone_from(dst).state_dict(), trained)


def test_official_backbone_official_is_the_identity_on_the_trunk(tmp_path, official_femto):
    src, state_dict = official_femto
    convert_checkpoint(src, tmp_path / 'backbone.pth')
    assert default_target(torch.load(tmp_path / 'backbone.pth', weights_only=True)['state_dict']) \
        == 'official'
    convert_checkpoint(tmp_path / 'backbone.pth', tmp_path / 'official.pth')
    assert_same_tensors(torch.load(tmp_path / 'official.pth', weights_only=True),
                        trunk(state_dict))


def test_classifier_to_official_keeps_the_head(official_femto):
    _, state_dict = official_femto
    assert_same_tensors(to_official_classifier(state_dict), state_dict)


def test_wrong_arch_names_both(tmp_path, official_femto):
    src, state_dict = official_femto
    with pytest.raises(CheckpointMismatchError, match=r"arch='femto' \(requested arch='tiny'\)"):
        convert_checkpoint(src, tmp_path / 'x.pth', arch='tiny')
    with pytest.raises(CheckpointMismatchError, match="arch='femto'.*arch='kobe'"):
        to_backbone_checkpoint(state_dict, 'kobe')
    assert not (tmp_path / 'x.pth').exists()


def test_uninferable_arch_asks_for_it(official_femto):
    _, state_dict = official_femto
    broken = {k: v for k, v in state_dict.items() if not k.startswith('stages.3.2.')}
    with pytest.raises(CheckpointMismatchError, match='Cannot infer the MambaOut variant.*--arch'):
        to_backbone_checkpoint(broken)
    with pytest.raises(CheckpointMismatchError, match='missing from the checkpoint: stages.3.2.'):
        to_backbone_checkpoint(broken, 'femto')


def test_cli_round_trip_and_errors(tmp_path, official_femto):
    src, state_dict = official_femto
    out = run_tool(tool('convert_checkpoint.py'), str(src), str(tmp_path / 'b.pth'),
                   '--arch', 'femto').stdout
    assert 'Dropped the classification head' in out and 'backbone layout' in out
    out = run_tool(tool('convert_checkpoint.py'), str(tmp_path / 'b.pth'),
                   str(tmp_path / 'o.pth'), '--to', 'official').stdout
    assert 'no classification head (head.*)' in out
    assert_same_tensors(torch.load(tmp_path / 'o.pth', weights_only=True), trunk(state_dict))

    proc = run_tool(tool('convert_checkpoint.py'), str(src), str(tmp_path / 'c.pth'),
                    '--arch', 'base', check=False)
    assert proc.returncode != 0
    assert "error: --arch base does not match the checkpoint" in proc.stderr
    assert 'Traceback' not in proc.stderr
