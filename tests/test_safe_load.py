"""mmengine checkpoints load under torch's safe unpickler; arbitrary code still does not."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mambaout_mm  # noqa: F401  (applies the allowlist)


@pytest.mark.safe_globals
def test_runner_style_checkpoint_loads_with_weights_only(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    checkpoint = {
        'meta': {'epoch': 1, 'seed': np.int64(3), 'lr': np.float64(0.1)},
        'message_hub': {'log_scalars': {'train/loss': buffer},
                        'runtime_info': {'hist': np.arange(3.0)}},
        'state_dict': {'w': torch.ones(2)},
    }
    path = tmp_path / 'iter_1.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert loaded['meta']['seed'] == 3
    np.testing.assert_array_equal(loaded['message_hub']['runtime_info']['hist'], np.arange(3.0))


class Exploit:
    def __reduce__(self):
        return os.system, ('echo pwned',)


def test_a_checkpoint_that_runs_code_is_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Exploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(path, weights_only=True)


@pytest.mark.safe_globals
def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    """A checkpoint that reaches for another attribute through getattr is refused."""
    class Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = tmp_path / 'sneaky.pth'
    torch.save({'payload': Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Refusing getattr"):
        torch.load(path, weights_only=True)
