"""Bad dataset files are named: before a run, while training, and by tools/check_dataset.py."""
import json
from pathlib import Path

import pytest

from mambaout_mm.datasets import make_ade_shapes, make_coco_shapes
from mambaout_mm.datasets.data_check import check_datasets, image_problem
from mambaout_mm.utils.config import load_config
from mambaout_mm.utils.errors import RunSetupError

from .tools_helpers import IN_PROCESS_LOADERS, config, run_tool, tool

DET = config('mask_rcnn/mask_rcnn_mambaout_femto_shapes.py')
SEG = config('upernet/upernet_mambaout_femto_shapes.py')


@pytest.fixture
def coco(tmp_path, monkeypatch) -> Path:
    """A folder holding data/coco_shapes (4 train, 2 val images), the working directory."""
    make_coco_shapes(tmp_path / 'data' / 'coco_shapes', num_train=4, num_val=2)
    monkeypatch.chdir(tmp_path)
    return tmp_path / 'data' / 'coco_shapes'


def test_image_problems_are_told_apart(coco):
    image = next((coco / 'train2017').iterdir())
    assert image_problem(str(image)) is None
    (coco / 'empty.jpg').write_bytes(b'')
    (coco / 'text.jpg').write_text('<html>not found</html>')
    assert image_problem(str(coco / 'empty.jpg')) == 'is empty (0 bytes)'
    assert image_problem(str(coco / 'text.jpg')).startswith('is not an image mmcv can decode')
    assert image_problem(str(coco / 'absent.jpg')) == 'does not exist'


def test_an_annotation_file_without_images_is_named(coco):
    ann = json.loads((coco / 'annotations' / 'instances_train2017.json').read_text())
    (coco / 'annotations' / 'none.json').write_text(json.dumps({**ann, 'images': [],
                                                                'annotations': []}))
    cfg = load_config(DET, {'train_dataloader.dataset.ann_file': 'annotations/none.json'})
    with pytest.raises(RunSetupError, match=r'for train has no samples: the annotation file '
                       r'data/coco_shapes/annotations/none.json lists no images'):
        check_datasets(cfg, ('train',))
    assert [len(built) for _, _, built in check_datasets(cfg, ('val',))] == [2]


def test_an_empty_image_folder_is_named(tmp_path, monkeypatch):
    make_ade_shapes(tmp_path / 'data' / 'ade_shapes', num_train=2, num_val=2)
    monkeypatch.chdir(tmp_path)
    for image in (tmp_path / 'data' / 'ade_shapes' / 'images' / 'validation').iterdir():
        image.unlink()
    with pytest.raises(RunSetupError, match=r'for val has no samples: '
                       r'data/ade_shapes/images/validation, .* holds no files it reads'):
        check_datasets(load_config(SEG), ('val',))


def test_data_on_a_storage_backend_is_left_to_mmengine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing here: local data would be reported missing
    cfg = load_config(DET)
    cfg.train_dataloader.dataset.update(data_root='s3://bucket/coco/',
                                        backend_args=dict(backend='petrel'))
    assert [built for *_, built in check_datasets(cfg, ('train',))] == [None]
    with pytest.raises(RunSetupError, match='is missing data/coco_shapes/'):
        check_datasets(load_config(DET), ('train',))


def test_training_names_an_unreadable_image(coco):
    image = sorted((coco / 'train2017').iterdir())[0]
    image.write_bytes(b'')
    proc = run_tool(tool('train.py'), DET, '--work-dir', 'work_dirs/bad', '--cfg-options',
                    'train_cfg.max_epochs=1', *IN_PROCESS_LOADERS, check=False, cwd=coco.parents[1])
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'error: image data/coco_shapes/train2017/{image.name} is empty (0 bytes)')
    dumped = (coco.parents[1] / 'work_dirs' / 'bad' / Path(DET).name).read_text()
    assert "type='NamedLoadImageFromFile'" in dumped
    assert "'mambaout_mm.datasets.transforms'" in dumped


def test_check_dataset_lists_every_unreadable_file(coco):
    root = coco.parents[1]
    assert run_tool(tool('check_dataset.py'), DET, cwd=root).returncode == 0
    train, val = sorted((coco / 'train2017').iterdir()), sorted((coco / 'val2017').iterdir())
    train[0].write_bytes(b'')
    train[1].unlink()
    val[0].write_text('<html>')
    proc = run_tool(tool('check_dataset.py'), DET, check=False, cwd=root)
    assert proc.returncode == 1
    assert 'train: CocoDataset, 4 samples, 4 new files, 2 unreadable' in proc.stdout
    assert f'data/coco_shapes/train2017/{train[0].name} is empty (0 bytes)' in proc.stdout
    assert f'data/coco_shapes/train2017/{train[1].name} does not exist' in proc.stdout
    assert f'data/coco_shapes/val2017/{val[0].name} is not an image' in proc.stdout
    assert '3 unreadable files' in proc.stderr
    proc = run_tool(tool('check_dataset.py'), DET, '--cfg-options',
                    'train_dataloader.dataset.data_root=elsewhere/', check=False, cwd=root)
    assert proc.returncode == 1 and 'is missing elsewhere/' in proc.stderr


def test_an_annotation_file_cut_short_is_one_line_naming_it(coco):
    """An interrupted download or copy: the tools name the file, not pycocotools' JSON error."""
    ann = coco / 'annotations' / 'instances_train2017.json'
    text = ann.read_text()
    ann.write_text(text[:len(text) // 2])
    with pytest.raises(RunSetupError, match=r'The annotation file data/coco_shapes/annotations/'
                       r'instances_train2017\.json \(CocoDataset for train\) is damaged: not '
                       r'complete JSON \(.* at line \d+, column \d+ of its \d+ characters\)'):
        check_datasets(load_config(DET), ('train',))
    for args in ([tool('check_dataset.py'), DET], [tool('train.py'), DET, '--cfg-options',
                                                   *IN_PROCESS_LOADERS]):
        proc = run_tool(*args, check=False, cwd=coco.parents[1])
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
        assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1]
        assert 'instances_train2017.json (CocoDataset for train) is damaged' in errors[0]
        assert 'generate them again with tools/make_shapes.py' in errors[0]
