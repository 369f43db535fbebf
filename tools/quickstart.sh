#!/usr/bin/env bash
# The README's main command: generated data -> train -> evaluate -> a picture, on a CPU in minutes.
#   bash tools/quickstart.sh detection      Mask R-CNN (COCO-format shapes): bbox and segm mAP
#   bash tools/quickstart.sh segmentation   UperNet (ADE20K-layout shapes): single- and multi-scale mIoU
# Re-running resumes an interrupted training and reuses a finished one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TASK=${1:-detection}
case "$TASK" in
  detection) KIND=coco; DATA=data/coco_shapes; CONFIG=configs/mask_rcnn/mask_rcnn_mambaout_femto_shapes.py
       VAL=$DATA/val2017; MAKE_ARGS=(--num-train 400) ;;
  segmentation) KIND=ade; DATA=data/ade_shapes; CONFIG=configs/upernet/upernet_mambaout_femto_shapes.py
       VAL=$DATA/images/validation; MAKE_ARGS=() ;;
  *) echo "usage: $0 detection|segmentation" >&2; exit 2 ;;
esac
WORK=work_dirs/quickstart_$TASK
START=$SECONDS

echo "==> [1/4] generated dataset in $DATA"
"$PY" tools/make_shapes.py "$KIND" "$DATA" "${MAKE_ARGS[@]}"
echo "==> [2/4] training $CONFIG (log: $WORK)"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK" --resume
CHECKPOINT=$(cat "$WORK/last_checkpoint")
echo "==> [3/4] evaluating $CHECKPOINT"
"$PY" tools/test.py "$CONFIG" "$CHECKPOINT" --work-dir "$WORK"
if [ "$TASK" = segmentation ]; then
  "$PY" tools/test.py "$CONFIG" "$CHECKPOINT" --work-dir "$WORK" --tta
fi
echo "==> [4/4] drawing predictions on validation images"
"$PY" tools/demo.py "$VAL" "$CONFIG" "$CHECKPOINT" --out "$WORK/predictions.png"

echo "==> done in $((SECONDS - START)) s"
for f in "$WORK"/test_metrics*.json; do echo "$f:"; cat "$f"; echo; done
echo "predictions: $WORK/predictions.png"
