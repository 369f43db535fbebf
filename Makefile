# Two entry points for a new user: `make quickstart` and `make test`. Both set up .venv first.
# `make test-slow` runs the tests of minutes each (marked `slow`: Params/MACs of the paper's models,
# FP16 training numerics at the paper's sizes) that `make test` leaves out.
# `make test-gpu` runs the GPU check suite (tests marked `gpu`) where torch sees a GPU.
# `make test-oldest` runs the suite on the oldest supported stack (torch 2.1.2) in .venv-oldest.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q
OLDEST_VENV ?= .venv-oldest
OLDEST_TORCH ?= 2.1.2

# The recipes beyond Tables 2 and 3 beside ConvNeXt's and Swin's (mmdet's and mmseg's configs, and
# configs/peers/ where they ship none), counted in one run: `make costs` (docs/results.md).
COST_CONFIGS := \
  configs/mask_rcnn/mambaout_tiny_3x_ms.py \
  configs/mask_rcnn/mambaout_small_3x_ms.py \
  configs/mask_rcnn/mambaout_base_3x_ms.py \
  mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py \
  configs/peers/mask_rcnn/convnext_small_3x_ms.py \
  configs/peers/mask_rcnn/convnext_base_3x_ms.py \
  mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py \
  mmdet::swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py \
  configs/peers/mask_rcnn/swin_base_3x_ms.py \
  configs/cascade_mask_rcnn/mambaout_tiny_3x_ms.py \
  configs/cascade_mask_rcnn/mambaout_small_3x_ms.py \
  configs/cascade_mask_rcnn/mambaout_base_3x_ms.py \
  mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py \
  mmdet::convnext/cascade-mask-rcnn_convnext-s-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py \
  configs/peers/cascade_mask_rcnn/convnext_base_3x_ms.py \
  configs/peers/cascade_mask_rcnn/swin_tiny_3x_ms.py \
  configs/peers/cascade_mask_rcnn/swin_small_3x_ms.py \
  configs/peers/cascade_mask_rcnn/swin_base_3x_ms.py \
  configs/upernet/mambaout_base_plus_rw_in12k_160k.py \
  mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py \
  mmseg::swin/swin-base-patch4-window7-in22k-pre_upernet_8xb2-160k_ade20k-512x512.py \
  configs/upernet/mambaout_base_plus_rw_in12k_160k_640.py \
  mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-640x640.py

.PHONY: env test test-slow test-gpu test-oldest quickstart quickstart-seg costs

env:
	VENV=$(VENV) bash tools/setup_env.sh

test: env
	$(PY) -m pytest tests -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: env
	$(PY) -m pytest tests -m "slow and not gpu" $(PYTEST_ARGS)

# Needs mmcv with CUDA ops (tools/setup_env.sh builds them where torch sees a GPU).
test-gpu: env
	$(PY) -m pytest tests -m gpu $(PYTEST_ARGS)

# Deselected there: `slow` (Params/MACs, unchanged by the stack), `safe_globals` (torch >= 2.4),
# `cpu_grad_scaler` (torch >= 2.3).
test-oldest:
	VENV=$(OLDEST_VENV) TORCH=$(OLDEST_TORCH) bash tools/setup_env.sh
	$(OLDEST_VENV)/bin/python -m pytest tests -m "not slow and not safe_globals and not cpu_grad_scaler and not gpu" $(PYTEST_ARGS)

quickstart: env
	PYTHON=$(PY) bash tools/quickstart.sh det

quickstart-seg: env
	PYTHON=$(PY) bash tools/quickstart.sh seg

costs: env
	mkdir -p work_dirs
	$(PY) tools/get_flops.py $(COST_CONFIGS) --json work_dirs/costs.json
