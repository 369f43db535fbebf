"""Loading weights in every layout, with clear errors for the ones that do not fit."""
import argparse
import logging
import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file

from mambaout_mm import CheckpointMismatchError, MambaOut, MambaOutBackbone
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.weights.checkpoint import (
    CheckpointReadError,
    load_mambaout_weights,
    read_checkpoint,
    to_official_layout,
)


def assert_trunk_equals(backbone, state_dict):
    own = backbone.state_dict()
    trunk_keys = [k for k in own if k.startswith(('downsample_layers.', 'stages.'))]
    assert trunk_keys
    for k in trunk_keys:
        torch.testing.assert_close(own[k], state_dict[k], rtol=0, atol=0)


def pretrained(path, **kwargs):
    return MambaOutBackbone('femto', init_cfg=dict(type='Pretrained', checkpoint=str(path)),
                            **kwargs)


def test_official_checkpoint_loads_strictly_into_the_classifier(official_femto):
    path, state_dict = official_femto
    model = MambaOut('femto')
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    torch.testing.assert_close(model.head.fc2.weight, state_dict['head.fc2.weight'])


def test_official_checkpoint_into_backbone_drops_head_and_logs(official_femto, caplog):
    path, state_dict = official_femto
    backbone = pretrained(path)
    norm0_before = backbone.norm0.weight.clone()
    with caplog.at_level(logging.INFO):
        report = load_mambaout_weights(backbone, path, ignore_prefixes=('norm.', 'head.'))
    assert_trunk_equals(backbone, state_dict)
    assert sorted(report['dropped']) == sorted(k for k in state_dict
                                               if k.startswith(('norm.', 'head.')))
    assert report['fresh'] == [f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')]
    torch.testing.assert_close(backbone.norm0.weight, norm0_before)
    assert 'Dropped 8 tensors' in caplog.text


def test_init_cfg_pretrained_loads_through_init_weights(official_femto):
    path, state_dict = official_femto
    backbone = pretrained(path)
    backbone.init_weights()
    assert_trunk_equals(backbone, state_dict)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_timm_checkpoint_loads(tmp_path, suffix):
    reference = randomize_(timm.create_model('mambaout_femto'), seed=3)
    path = tmp_path / f'timm_femto{suffix}'
    if suffix == '.safetensors':
        save_file(reference.state_dict(), str(path))
    else:
        torch.save(reference.state_dict(), path)
    backbone = pretrained(path)
    backbone.init_weights()
    assert_trunk_equals(backbone, to_official_layout(reference.state_dict()))


def test_mmengine_detector_checkpoint_loads_backbone_and_output_norms(tmp_path, official_femto):
    _, state_dict = official_femto
    trained = randomize_(MambaOutBackbone('femto'), seed=4).state_dict()
    wrapped = {'meta': {'epoch': 12}, 'state_dict': {
        **{f'backbone.{k}': v for k, v in trained.items()},
        'neck.lateral_convs.0.conv.weight': torch.zeros(1)}}
    path = tmp_path / 'epoch_12.pth'
    torch.save(wrapped, path)
    backbone = pretrained(path)
    backbone.init_weights()
    for k, v in backbone.state_dict().items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)


def test_subset_of_stages_ignores_the_pruned_stages(official_femto):
    path, state_dict = official_femto
    backbone = pretrained(path, out_indices=(0, 1))
    backbone.init_weights()
    assert_trunk_equals(backbone, state_dict)


def test_wrong_variant_names_shapes_and_the_right_arch(tmp_path):
    path = tmp_path / 'mambaout_kobe.pth'
    torch.save(MambaOut('kobe').state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as err:
        pretrained(path).init_weights()
    message = str(err.value)
    assert 'missing from the checkpoint' not in message  # kobe has every femto key...
    assert 'not in the model: stages.2.9.' in message     # ...and more blocks
    assert "looks like arch='kobe'" in message

    path = tmp_path / 'mambaout_tiny.pth'
    torch.save(MambaOut('tiny').state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"downsample_layers.0.conv1.weight: "
                       r"checkpoint \(48, 3, 3, 3\) vs model \(24, 3, 3, 3\).*arch='tiny'"):
        pretrained(path).init_weights()


def test_corrupted_checkpoint_names_missing_keys(tmp_path, official_femto):
    _, state_dict = official_femto
    broken = {k: v for k, v in state_dict.items() if not k.startswith('stages.3.1.')}
    path = tmp_path / 'broken.pth'
    torch.save(broken, path)
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing from the checkpoint: stages.3.1.norm.weight'):
        pretrained(path).init_weights()


def test_not_a_mambaout_checkpoint(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(CheckpointMismatchError, match='0 of .* model tensors matched'):
        pretrained(path).init_weights()
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointMismatchError, match='Not a state_dict'):
        pretrained(path).init_weights()


def test_missing_file_says_where_to_get_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'releases/download/model/mambaout_femto.pth'):
        pretrained(tmp_path / 'mambaout_femto.pth').init_weights()


@pytest.mark.parametrize('content,problem', [
    (b'', r'is empty \(0 bytes\)'),
    (b'<!DOCTYPE html><html><body>Not Found</body></html>', 'HTML page'),
    (b'a,b,c\n1,2,3\n', 'is not a PyTorch checkpoint'),
    ('truncated', 'truncated or damaged PyTorch checkpoint'),
])
def test_unreadable_files_are_named_with_the_problem(tmp_path, official_femto, content, problem):
    path = tmp_path / 'mambaout_femto.pth'
    if content == 'truncated':
        whole = official_femto[0].read_bytes()
        content = whole[:len(whole) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match=problem) as err:
        pretrained(path).init_weights()
    assert str(path) in str(err.value)


@pytest.mark.safe_globals
def test_a_pickle_with_code_names_the_file_and_the_object(tmp_path):
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'args': argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(pickle.UnpicklingError, match=r'model\.pth: holds the object '
                                                     r'argparse\.Namespace.*weights_only=False'):
        read_checkpoint(path)


def test_url_without_network_names_the_url_and_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    url = 'http://127.0.0.1:9/mambaout_femto.pth'  # discard port: refused at once, offline
    with pytest.raises(CheckpointReadError) as err:
        pretrained(url).init_weights()
    message = str(err.value)
    assert url in message and 'wget' in message
    assert str(tmp_path / 'torch' / 'hub' / 'checkpoints' / 'mambaout_femto.pth') in message
    assert not list((tmp_path / 'torch' / 'hub' / 'checkpoints').iterdir())  # no partial file


def test_url_reads_the_copy_in_the_hub_cache(tmp_path, monkeypatch, official_femto):
    """A URL is downloaded once into torch's hub cache; a copy put there by hand is used."""
    path, state_dict = official_femto
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    (cache / 'mambaout_femto.pth').write_bytes(path.read_bytes())
    backbone = pretrained('https://example.invalid/model/mambaout_femto.pth')
    backbone.init_weights()
    assert_trunk_equals(backbone, state_dict)


def _whole(backbone: str, classes: int) -> torch.nn.Module:
    """A stand-in detector: a MambaOut backbone and a head."""
    return torch.nn.ModuleDict(dict(backbone=MambaOutBackbone(backbone, out_indices=(3,)),
                                    head=torch.nn.Linear(288, classes)))


def test_a_whole_model_checkpoint_that_does_not_fit_is_refused_naming_what_matched():
    from mambaout_mm.weights.checkpoint import fit_model_weights, model_state_dict
    own = _whole('femto', 4).state_dict()
    saved = {'state_dict': {f'module.{k}': v for k, v in _whole('femto', 80).state_dict().items()},
             'meta': {}}  # saved from a distributed wrapper: the prefix is not a difference
    source = model_state_dict(saved)
    with pytest.raises(CheckpointMismatchError) as raised:
        fit_model_weights(own, {**source, 'neck.conv.weight': torch.zeros(1)}, 'The checkpoint x')
    message = str(raised.value)
    assert message.startswith(f'The checkpoint x does not fit the model: {len(own) - 2} of '
                              f'{len(own)} model tensors matched; shape mismatches: head.weight: '
                              f'checkpoint (80, 288) vs model (4, 288), head.bias')
    assert message.count('; not in the model: neck.conv.weight.') == 1
    assert 'give it as load_from to tools/train.py' in message
    assert fit_model_weights(own, model_state_dict(_whole('femto', 4).state_dict()), 'x').keys() \
        == own.keys()  # a checkpoint that fits is taken whole


def test_a_partial_load_takes_what_fits_and_lists_the_rest(caplog):
    from mambaout_mm.weights.checkpoint import fit_model_weights
    own = _whole('femto', 4).state_dict()
    source = {**_whole('femto', 80).state_dict(), 'extra.weight': torch.zeros(1)}
    with caplog.at_level(logging.WARNING):
        fitting = fit_model_weights(own, source, 'The checkpoint x', partial=True)
    assert sorted(fitting) == sorted(k for k in own if not k.startswith('head.'))
    assert (f'Loaded {len(own) - 2} of {len(own)} model tensors from The checkpoint x (a partial '
            f'load); left at initialisation: head.* (2 tensors); not used: extra.weight.'
            ) in caplog.text
    with pytest.raises(CheckpointMismatchError, match='0 of .* model tensors matched'):
        fit_model_weights(own, {'other.weight': torch.zeros(1)}, 'x', partial=True)


def test_another_backbone_variant_is_named(tmp_path):
    from mambaout_mm.weights.checkpoint import load_model_checkpoint
    path = tmp_path / 'kobe.pth'
    torch.save({'state_dict': _whole('kobe', 4).state_dict()}, path)
    model = _whole('femto', 4)
    with pytest.raises(CheckpointMismatchError, match=f"The checkpoint {path} does not fit the "
                       r"model: .* Its backbone is MambaOut-kobe, the model's MambaOut-femto\."):
        load_model_checkpoint(model, path)
    torch.save({'state_dict': _whole('femto', 4).state_dict(), 'meta': {'epoch': 2}}, path)
    assert load_model_checkpoint(model, path)['meta'] == {'epoch': 2}


def test_the_runner_hook_refuses_a_resumed_checkpoint_and_trims_a_partial_load_from():
    from types import SimpleNamespace

    from mambaout_mm.engine.checkpoint_fit import CheckpointFitHook
    model = _whole('femto', 4)
    other = _whole('femto', 80).state_dict()
    for resume in (False, True):
        runner = SimpleNamespace(model=model, _resume=resume, _load_from='epoch_3.pth')
        checkpoint = {'state_dict': dict(other), 'meta': {}}
        with pytest.raises(CheckpointMismatchError, match=r'The checkpoint epoch_3\.pth '
                           + (r'\(resumed\) ' if resume else '') + 'does not fit'):
            CheckpointFitHook().after_load_checkpoint(runner, checkpoint)
        if resume:  # a resumed checkpoint fits whole, partial or not
            with pytest.raises(CheckpointMismatchError):
                CheckpointFitHook(partial=True).after_load_checkpoint(runner, checkpoint)
        else:  # load_from, partial: mmengine then loads only what fits
            CheckpointFitHook(partial=True).after_load_checkpoint(runner, checkpoint)
            assert sorted(checkpoint['state_dict']) == sorted(
                k for k in other if not k.startswith('head.'))
