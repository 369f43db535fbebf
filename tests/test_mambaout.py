"""The core classification model: variants, parameter counts, agreement with timm."""
import pytest
import timm
import torch
from timm.models.mambaout import checkpoint_filter_fn

from mambaout_mm import MambaOut, MambaOutTrunk
from mambaout_mm.evaluation.paper import paper_table
from mambaout_mm.models.mambaout import variants
from mambaout_mm.models.random_weights import randomize_
from mambaout_mm.utils.errors import ConfigError
from mambaout_mm.weights.checkpoint import infer_arch, timm_to_official

OFFICIAL = variants('official')


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch', OFFICIAL)
def test_parameters_match_official_readme(arch):
    expected = paper_table('imagenet')[arch]['params_m']
    assert round(num_params(MambaOut(arch)) / 1e6, 1) == expected


@pytest.mark.parametrize('arch', variants(in_timm=True))
def test_same_features_and_logits_as_timm(arch):
    """Random timm weights, converted, give timm's stage features and logits."""
    reference = randomize_(timm.create_model(f'mambaout_{arch}'), seed=1).eval()
    state_dict = timm_to_official(reference.state_dict())
    model = MambaOut(arch).eval()
    model.load_state_dict(state_dict, strict=True)
    assert num_params(model) == num_params(reference)
    assert infer_arch(state_dict) == arch

    x = torch.randn(1, 3, 71, 93)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True, output_fmt='NHWC')
        features = model.forward_features(x)
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
    assert len(features) == 4
    for ours, theirs in zip(features, expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', OFFICIAL)
def test_timm_conversion_inverts_timms_filter(arch):
    """timm's own official->timm filter, then ours back, is the identity on names and values."""
    official = MambaOut(arch).state_dict()
    as_timm = checkpoint_filter_fn(official, None)
    assert set(as_timm) == set(timm.create_model(f'mambaout_{arch}').state_dict())
    back = timm_to_official(as_timm)
    assert back.keys() == official.keys()
    assert all(back[k] is official[k] for k in official)


def test_unknown_variant_names_the_choices():
    with pytest.raises(ConfigError, match="Unknown MambaOut variant 'tinyy'.*femto"):
        MambaOut('tinyy')


def test_custom_arch_dict_and_its_errors():
    model = MambaOut(dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)), num_classes=5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match='needs'):
        MambaOut(dict(depths=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='Unknown MambaOut arch settings'):
        MambaOut(dict(depths=(1,), dims=(8,), layer_scale=1))


def test_drop_path_is_a_linear_ramp_over_all_blocks():
    model = MambaOut('tiny', drop_path_rate=0.2)
    rates = [block.drop_path.drop_prob for stage in model.stages for block in stage[1:]]
    depths = model.arch_settings['depths']
    ramp = [0.2 * i / (sum(depths) - 1) for i in range(sum(depths))]
    starts = [sum(depths[:s]) for s in range(len(depths))]  # each stage's first block
    expected = [r for i, r in enumerate(ramp) if i not in starts]
    assert rates == pytest.approx(expected, abs=1e-7)
    assert isinstance(model.stages[0][0].drop_path, torch.nn.Identity)  # rate 0 at the first block


def test_the_classifier_is_the_trunk_and_a_head():
    trunk, classifier = MambaOutTrunk('femto'), MambaOut('femto')
    head = set(classifier.state_dict()) - set(trunk.state_dict())
    assert head and all(k.startswith(('norm.', 'head.')) for k in head)
    trunk.load_state_dict({k: v for k, v in classifier.state_dict().items() if k not in head})
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(classifier.forward_head(trunk(x)[-1]), classifier(x))
